import { equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { sweepDeadChannelDirectories } from "./channel_dir.ts";

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

/**
 * Makes `dir` look like the directory of a runner that was killed: a socket file nobody listens
 * on. (A listener closed in this process would unlink it; a SIGKILLed process cannot.)
 */
async function deadRunnerDirectory(dir: string): Promise<void> {
  await Deno.mkdir(dir);
  const socket = join(dir, "alive.sock");
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `Deno.listen({ transport: "unix", path: ${
        JSON.stringify(socket)
      } }); setInterval(() => {}, 1e6);`,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  while (!await exists(socket)) await new Promise((resolve) => setTimeout(resolve, 10));
  child.kill("SIGKILL");
  await child.status;
  await Deno.writeTextFile(join(dir, "plugin_p-1.sock"), "");
}

Deno.test("the sweep removes the channel directories of runners that ended, and nothing else", async () => {
  const parent = await Deno.makeTempDir({ prefix: "a6-sweep-" });
  const live = Deno.listen({ transport: "unix", path: join(parent, "live-alive.sock") });
  try {
    const gone = join(parent, "a6-deno-runner-101-abc");
    await deadRunnerDirectory(gone);
    // A running runner: it listens on its alive.sock.
    const running = join(parent, "a6-deno-runner-102-def");
    await Deno.mkdir(running);
    await Deno.rename(join(parent, "live-alive.sock"), join(running, "alive.sock"));
    // An older version's directory has no alive.sock: nothing says it is dead.
    const legacy = join(parent, "a6-deno-runner-Xy12Zq");
    await Deno.mkdir(legacy);
    // A symlink named like ours, to a directory that looks dead, is neither followed nor removed.
    const target = join(parent, "elsewhere");
    await deadRunnerDirectory(target);
    const trap = join(parent, "a6-deno-runner-103-link");
    await Deno.symlink(target, trap);
    // Other people's directories are not looked at.
    const unrelated = join(parent, "other-tool-104");
    await deadRunnerDirectory(unrelated);

    equal(await sweepDeadChannelDirectories(parent), 1);
    equal(await exists(gone), false);
    for (const path of [running, legacy, trap, join(target, "plugin_p-1.sock"), unrelated]) {
      ok(await exists(path), `${path} should stay`);
    }
    equal(await sweepDeadChannelDirectories(parent), 0);
  } finally {
    live.close();
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("a sweep of a directory that cannot be read does nothing and does not throw", async () => {
  equal(await sweepDeadChannelDirectories("/nonexistent/a6-sweep"), 0);
});
