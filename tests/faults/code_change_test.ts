import { deepEqual, equal } from "node:assert/strict";
import { join } from "node:path";
import { ApisixConn, latin1 } from "../support/apisix.ts";
import { asStop } from "../support/replies.ts";
import { ROOT, startRunner } from "../support/runner.ts";

/** Copies what `deno run main.ts` needs into a fresh directory (node_modules linked). */
async function copyProject(): Promise<string> {
  const copy = await Deno.makeTempDir({ prefix: "a6-copy-" });
  const copyTree = async (from: string, to: string) => {
    const info = await Deno.stat(from);
    if (!info.isDirectory) return await Deno.copyFile(from, to);
    await Deno.mkdir(to);
    for await (const entry of Deno.readDir(from)) {
      await copyTree(join(from, entry.name), join(to, entry.name));
    }
  };
  for (const name of ["main.ts", "mod.ts", "deno.json", "deno.lock"]) {
    await Deno.copyFile(join(ROOT, name), join(copy, name));
  }
  for (const name of ["runner", "sandbox", "api", "protocol", "plugins", "testing"]) {
    await copyTree(join(ROOT, name), join(copy, name));
  }
  await Deno.symlink(join(ROOT, "node_modules"), join(copy, "node_modules"));
  return copy;
}

Deno.test("a sandbox is not restarted from code that changed under the running runner", async () => {
  const copy = await copyProject();
  const runner = await startRunner({
    root: copy,
    config: {
      plugins: {
        say: { isolation: "process" },
        "request-rewrite": { isolation: "inline" },
      },
    },
  });
  const conn = await ApisixConn.connect(runner.socket);
  try {
    const say = await conn.token([["say", '{"body":"before"}']]);
    equal(latin1(asStop((await conn.reqCall({ token: say })).reply).body!), "before");
    const ready = await runner.waitForLine(/sandbox plugin:say ready/);
    const pid = Number(/\(pid (\d+)\)/.exec(ready)![1]);

    // An update in place (a `git pull`), then the sandbox has to start again.
    await Deno.writeTextFile(join(copy, "sandbox/messages.ts"), "\n// updated\n", { append: true });
    Deno.kill(pid, "SIGKILL");
    await runner.waitForLine(
      /sandbox\/messages\.ts changed on disk since the runner started.*restart the runner/,
    );
    // The plugin is answered as unavailable (failure policy closed), not run on mismatched code.
    deepEqual((await conn.reqCall({ token: say })).reply, { rpc: 0, code: 1 });
    // Everything else keeps working.
    const rewrite = await conn.token([["request-rewrite", '{"headers":{"set":{"x-a":"1"}}}']]);
    equal((await conn.reqCall({ token: rewrite })).reply.rpc, 2);
  } finally {
    conn.close();
    await runner.stop();
    await Deno.remove(copy, { recursive: true });
  }
});
