import { deepEqual, equal } from "node:assert/strict";
import { ApisixConn, latin1 } from "../support/apisix.ts";
import { startRunner } from "../support/runner.ts";

Deno.test("say answers through a sandbox process, and SIGTERM ends the runner", async () => {
  const runner = await startRunner();
  try {
    const conn = await ApisixConn.connect(runner.socket);
    const token = await conn.token([[
      "say",
      JSON.stringify({ body: "hi", headers: { "x-a": ["1", "2"] } }),
    ]]);
    const { reply } = await conn.reqCall({ id: 7, token });
    equal(reply.rpc, 2);
    if (reply.rpc !== 2 || reply.action !== "stop") throw new Error(JSON.stringify(reply));
    equal(reply.id, 7);
    equal(reply.status, 200);
    deepEqual(reply.headers, [["x-a", "1"], ["x-a", "2"]]);
    equal(latin1(reply.body!), "hi");
    conn.close();
  } finally {
    const { status, ms } = await runner.stop();
    equal(status.code, 0);
    equal(ms < 1000, true, `exit took ${ms} ms`);
  }
});
