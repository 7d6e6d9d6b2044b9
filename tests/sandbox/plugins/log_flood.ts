/**
 * Fault: a message flood. The console's per-second limit runs inside the plugin's own realm,
 * so the plugin defeats it (a clock that jumps a second per read) and logs without end; the
 * runner's own count of messages per second must catch it.
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { armed } from "./faults.ts";

export default definePlugin({
  name: "log_flood",
  async requestFilter(_conf, req, res) {
    if (!armed(req, res)) return;
    let fake = Date.now();
    Date.now = () => (fake += 1001);
    for (let i = 0;; i++) {
      console.log(`flood line ${i}`);
      // Let each few hundred lines leave as a batch, as a busy plugin's output would.
      if (i % 200 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
    }
  },
});
