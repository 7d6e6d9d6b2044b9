import { equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { ApisixConn } from "../support/apisix.ts";
import { startRunner } from "../support/runner.ts";

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

Deno.test("a runner starting a sandbox removes the channel directory of a runner killed before it", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "a6-sweep-tmp-" });
  // What a SIGKILLed runner leaves: its directory, and the socket it listened on to say it ran.
  const first = await startRunner({
    config: { plugins: { say: { isolation: "process" } } },
    env: { TMPDIR: tmp },
  });
  const conn = await ApisixConn.connect(first.socket);
  await conn.token([["say", '{"body":"hi"}']]);
  conn.close();
  const leftover = join(tmp, [...Deno.readDirSync(tmp)].map((e) => e.name)[0]!);
  ok(leftover.includes(`a6-deno-runner-${first.process.pid}-`), leftover);
  first.process.kill("SIGKILL");
  await first.process.status;
  ok(await exists(join(leftover, "alive.sock")));

  const second = await startRunner({
    config: { plugins: { say: { isolation: "process" } } },
    env: { TMPDIR: tmp },
  });
  try {
    const conn = await ApisixConn.connect(second.socket);
    try {
      await conn.token([["say", '{"body":"hi"}']]);
    } finally {
      conn.close();
    }
    await second.waitForLine(/removed 1 channel directories of runners that are gone/);
    equal(await exists(leftover), false);
    const names = [...Deno.readDirSync(tmp)].map((e) => e.name);
    equal(names.length, 1, names.join());
    ok(names[0]!.startsWith(`a6-deno-runner-${second.process.pid}-`), names.join());
  } finally {
    await second.stop();
  }
  // A runner that stops cleanly removes its own.
  equal([...Deno.readDirSync(tmp)].length, 0);
  await Deno.remove(tmp, { recursive: true });
});
