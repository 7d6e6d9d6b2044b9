/**
 * APISIX dies without stopping the runner (SIGKILL, a crash): the runner's stdin, a pipe from
 * APISIX, reaches its end, and the runner exits instead of living on as an orphan that holds
 * memory and its sandboxes (PROTOCOL.md §1.4: "also exit on stdin EOF").
 */
import { equal, ok } from "node:assert/strict";
import { pause, RawConn } from "../support/raw_conn.ts";
import { startRunner } from "../support/runner.ts";
import { gone, reqCall, sandboxPid, tokenFor } from "./faults.ts";

Deno.test("the runner exits when its parent's stdin pipe closes", async () => {
  const runner = await startRunner({ stdinPipe: true });
  try {
    const conn = await RawConn.connect(runner.socket);
    await reqCall(conn, await tokenFor(conn, "say", { body: "hi" }));
    conn.close();
    const sandbox = await sandboxPid(runner, "say");
    const started = performance.now();
    await runner.process.stdin.close();
    const status = await Promise.race([runner.process.status, pause(5000).then(() => null)]);
    ok(status, "the runner is still running 5 s after its stdin closed");
    equal(status.code, 0);
    ok(
      performance.now() - started < 1000,
      `exit took ${Math.round(performance.now() - started)} ms`,
    );
    ok(await gone(sandbox), "its sandbox outlived it");
    ok(runner.lines.some((line) => /parent process is gone/.test(line)));
  } finally {
    await runner.stop().catch(() => {});
  }
});
