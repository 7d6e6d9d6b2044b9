/**
 * Fault: a rejection nobody handles and an error thrown from a timer, while the filter itself
 * answers normally. Both are logged under the plugin's name; nothing else happens.
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { armed } from "./faults.ts";

export default definePlugin({
  name: "unhandled",
  requestFilter(_conf, req, res) {
    if (!armed(req, res)) return;
    Promise.reject(new Error("an unhandled rejection on purpose"));
    setTimeout(() => {
      throw new Error("an uncaught timer error on purpose");
    }, 0);
    res.body = "answered anyway";
  },
});
