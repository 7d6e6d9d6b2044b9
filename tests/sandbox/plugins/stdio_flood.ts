/**
 * Fault: floods the sandbox's stderr with raw writes (past the console capture). The runner
 * reads stderr at a limited rate, so the writes block and the call overruns its deadline.
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { writeSync } from "node:fs";
import { armed } from "./faults.ts";

export default definePlugin({
  name: "stdio_flood",
  requestFilter(_conf, req, res) {
    if (!armed(req, res)) return;
    const line = new TextEncoder().encode("flooding stderr ".repeat(8) + "\n");
    for (;;) writeSync(2, line);
  },
});
