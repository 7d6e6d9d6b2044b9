/** Fault: the filter throws. The call fails by the plugin's policy; the sandbox stays. */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { armed } from "./faults.ts";

export default definePlugin({
  name: "throws",
  requestFilter(_conf, req, res) {
    if (!armed(req, res)) return;
    throw new RangeError("the plugin threw on purpose");
  },
});
