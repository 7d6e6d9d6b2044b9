/** Fault: an endless CPU loop (Worker.terminate() cannot stop it; only a process kill can). */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { armed } from "./faults.ts";

export default definePlugin({
  name: "loop",
  requestFilter(_conf, req, res) {
    if (!armed(req, res)) return;
    for (;;) { /* spin */ }
  },
});
