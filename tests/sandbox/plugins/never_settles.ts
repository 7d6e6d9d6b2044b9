/** Fault: a filter whose promise never settles. */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { armed } from "./faults.ts";

export default definePlugin({
  name: "never_settles",
  requestFilter(_conf, req, res) {
    if (!armed(req, res)) return;
    return new Promise<void>(() => {});
  },
});
