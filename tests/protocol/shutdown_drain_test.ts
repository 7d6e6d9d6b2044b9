/**
 * Shutdown never drops a request that was already on its way: one written just before SIGTERM
 * reaches the runner is still answered before its connection closes.
 */
import { equal } from "node:assert/strict";
import { ApisixConn, encodeReqCall, RPC } from "../support/apisix.ts";
import { startRunner } from "../support/runner.ts";

Deno.test("a request written right before SIGTERM on an idle connection is answered", async () => {
  const runner = await startRunner();
  let stopped;
  try {
    const conn = await ApisixConn.connect(runner.socket);
    const token = await conn.token([["say", JSON.stringify({ body: "last one" })]]);
    await conn.reqCall({ token }); // the sandbox is warm, the connection idle
    await conn.send(RPC.HttpReqCall, encodeReqCall({ id: 9, token }));
    stopped = runner.stop();
    const reply = await conn.readFrame(5000);
    equal(reply?.type, RPC.HttpReqCall);
    conn.close();
  } finally {
    const { status, ms } = await (stopped ?? runner.stop());
    equal(status.code, 0);
    equal(ms < 1000, true, `exit took ${ms} ms`);
  }
});
