/**
 * PrepareConf when a plugin cannot prepare its conf for a reason other than the conf itself
 * (its sandbox does not start, it keeps crashing, the parse times out): a fail-closed plugin
 * fails the PrepareConf with SERVICE_UNAVAILABLE, so the route never runs without it; a
 * fail-open plugin is skipped like a rejected conf.
 */
import { equal } from "node:assert/strict";
import { ApisixConn } from "../support/apisix.ts";
import { asStop, errorCode } from "../support/replies.ts";
import { startRunner } from "../support/runner.ts";
import { FIXTURES } from "../support/scripted.ts";

Deno.test("a plugin whose sandbox cannot start fails PrepareConf if closed, is skipped if open", async () => {
  const module = `${FIXTURES}/broken_load.ts`;
  const runner = await startRunner({
    config: {
      plugins: {
        "broken-closed": { module, timeoutMs: 1500 },
        "broken-open": { module, timeoutMs: 1500, failure: "open" },
      },
    },
  });
  try {
    const conn = await ApisixConn.connect(runner.socket);
    const closed = await conn.prepare([["broken-closed", "{}"]], "route#1#ext-plugin-pre-req#1");
    equal(errorCode(closed), 1, "SERVICE_UNAVAILABLE");
    await runner.waitForLine(/broken-closed.*answered SERVICE_UNAVAILABLE/);

    const conn2 = await ApisixConn.connect(runner.socket);
    const token = await conn2.token([
      ["broken-open", "{}"],
      ["say", JSON.stringify({ body: "still served" })],
    ]);
    const { reply } = await conn2.reqCall({ token });
    equal(new TextDecoder().decode(asStop(reply).body!), "still served");
    conn.close();
    conn2.close();
  } finally {
    await runner.stop();
  }
});
