/** Fault: fills the V8 heap until the heap limit ends the sandbox. */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { armed } from "./faults.ts";

const hoard: unknown[] = [];

export default definePlugin({
  name: "heap_bomb",
  requestFilter(_conf, req, res) {
    if (!armed(req, res)) return;
    for (let i = 0;; i++) hoard.push({ i, text: `item ${i}`, list: [i, i + 1, i + 2] });
  },
});
