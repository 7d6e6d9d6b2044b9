/**
 * A fail-closed plugin that cannot start makes every PrepareConf fail, and APISIX asks again on
 * every request: the "conf not prepared" line must share the plugin's per-second line budget,
 * or a crash-looping plugin would flood the runner's log at APISIX's request rate.
 *
 * @module
 */
import { deepEqual, ok } from "node:assert/strict";
import { ApisixConn } from "../support/apisix.ts";
import { startRunner } from "../support/runner.ts";
import { suitePlugin } from "./harness.ts";

const PER_SECOND = 2;
const ATTEMPTS = 40;

Deno.test("a plugin that cannot start does not flood the log with failed PrepareConfs", async () => {
  const runner = await startRunner({
    config: {
      bundled: false,
      plugins: {
        load_throws: suitePlugin("load_throws.ts", {
          failure: "closed",
          logLinesPerSecond: PER_SECOND,
        }),
      },
    },
  });
  const conn = await ApisixConn.connect(runner.socket);
  try {
    const started = performance.now();
    for (let i = 0; i < ATTEMPTS; i++) {
      // Fail closed: SERVICE_UNAVAILABLE, never a token that would skip the plugin.
      deepEqual(await conn.prepare([["load_throws", "{}"]], `route#${i}`), { rpc: 0, code: 1 });
    }
    const seconds = Math.ceil((performance.now() - started) / 1000);
    const logged = runner.lines.filter((line) => /conf not prepared/.test(line)).length;
    ok(logged >= 1, "the first failure is logged");
    // At most the budget in every second the attempts spanned (plus the second they began in).
    ok(
      logged <= PER_SECOND * (seconds + 1),
      `${logged} lines for ${ATTEMPTS} attempts in ${seconds} s`,
    );
  } finally {
    conn.close();
    await runner.stop();
  }
});
