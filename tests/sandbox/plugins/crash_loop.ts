/** Fault: every armed call exhausts the heap, so the sandbox keeps crashing. */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { armed } from "./faults.ts";

const hoard: unknown[] = [];

export default definePlugin({
  name: "crash_loop",
  requestFilter(_conf, req, res) {
    if (!armed(req, res)) return;
    for (let i = 0;; i++) hoard.push({ i, text: `item ${i}`, list: [i, i + 1] });
  },
});
