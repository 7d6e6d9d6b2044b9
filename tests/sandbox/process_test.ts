/**
 * The sandbox suite against the real runner process (`deno task start`'s flags, started the way
 * APISIX starts it): a plugin that signals the runner is refused, a looping plugin is killed
 * while the runner keeps serving, and when the runner ends (SIGTERM, or SIGKILL as APISIX's
 * last resort) no sandbox process outlives it.
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { ApisixConn } from "../support/apisix.ts";
import { type RunningRunner, startRunner } from "../support/runner.ts";
import { stopBody, stopHeader, SUITE_DIR } from "./harness.ts";

const CONFIG = {
  bundled: false,
  plugins: {
    say: {},
    kill_runner: { module: `${SUITE_DIR}plugins/kill_runner.ts` },
    loop: { module: `${SUITE_DIR}plugins/loop.ts`, timeoutMs: 300 },
  },
};

/** The pids of every sandbox the runner reported ready. */
function sandboxPids(runner: RunningRunner): number[] {
  return runner.lines.flatMap((line) => {
    const found = /sandbox \S+ ready in \d+ ms \(pid (\d+)\)/.exec(line);
    return found ? [Number(found[1])] : [];
  });
}

/**
 * Whether a process is still running. A zombie counts as ended: in a container whose pid 1
 * does not reap orphans, the sandboxes of an exited runner stay zombies forever.
 */
function running(pid: number): boolean {
  try {
    const ps = new Deno.Command("ps", { args: ["-o", "stat=", "-p", String(pid)] }).outputSync();
    const state = new TextDecoder().decode(ps.stdout).trim();
    return state !== "" && !state.startsWith("Z");
  } catch {
    // No ps: a signal that does nothing (SIGCONT) tells whether the pid exists at all.
    try {
      Deno.kill(pid, "SIGCONT");
      return true;
    } catch {
      return false;
    }
  }
}

/** Waits until none of `pids` runs; returns how long that took. */
async function allGone(pids: number[], timeoutMs: number): Promise<number> {
  const started = performance.now();
  while (pids.some(running)) {
    if (performance.now() - started > timeoutMs) {
      throw new Error(`sandboxes still running: ${pids.filter(running).join(", ")}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return performance.now() - started;
}

/** Starts the runner and each plugin's sandbox; returns the connection and tokens. */
async function warmUp(runner: RunningRunner) {
  const conn = await ApisixConn.connect(runner.socket);
  const say = await conn.token([["say", JSON.stringify({ body: "still here" })]]);
  const killer = await conn.token([["kill_runner", "{}"]]);
  const loop = await conn.token([["loop", "{}"]]);
  equal(stopBody((await conn.reqCall({ token: loop })).reply), "alive");
  return { conn, say, killer, loop };
}

Deno.test("the runner process survives attacks and leaves no sandbox behind on SIGTERM", async () => {
  const runner = await startRunner({ config: CONFIG, stdinPipe: true });
  const { conn, say, killer, loop } = await warmUp(runner);
  try {
    const { reply } = await conn.reqCall({ token: killer });
    equal(stopHeader(reply, "x-attack"), "denied");
    ok(stopHeader(reply, "x-learned")!.includes(`ppid=${runner.process.pid}`));

    const other = await ApisixConn.connect(runner.socket);
    const started = performance.now();
    const [looped] = await Promise.all([
      conn.reqCall({ token: loop, headers: [["x-go", "1"]] }),
      other.reqCall({ token: await other.token([["say", JSON.stringify({ body: "b" })]]) })
        .then(({ reply }) => equal(stopBody(reply), "b")),
    ]);
    const ms = performance.now() - started;
    deepEqual(looped.reply, { rpc: 0, code: 1 });
    // The deadline is 300 ms; the margin is for a loaded machine, not for the runner.
    ok(ms <= 700, `answered after ${ms.toFixed(0)} ms`);
    await runner.waitForLine(/killing sandbox plugin:loop: call exceeded its deadline/);
    equal(stopBody((await conn.reqCall({ token: say })).reply), "still here");
    other.close();
  } finally {
    conn.close();
  }
  const pids = sandboxPids(runner);
  ok(pids.length >= 3, `sandboxes: ${pids.join(", ")}`);
  const { status, ms } = await runner.stop();
  equal(status.code, 0);
  ok(ms < 1000, `the runner took ${ms.toFixed(0)} ms to exit`);
  await allGone(pids, 1000);
});

Deno.test("sandboxes end by themselves when the runner is SIGKILLed", async () => {
  const runner = await startRunner({ config: CONFIG });
  const { conn } = await warmUp(runner);
  conn.close();
  const pids = sandboxPids(runner);
  ok(pids.length >= 3);
  runner.process.kill("SIGKILL");
  await runner.stop();
  // Each sandbox sees its channel close and exits.
  await allGone(pids, 2000);
});
