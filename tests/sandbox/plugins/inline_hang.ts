/** An inline (trusted, in-runner) plugin whose armed calls never settle. */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { armed } from "./faults.ts";

export default definePlugin({
  name: "inline_hang",
  requestFilter(_conf, req, res) {
    if (!armed(req, res)) return;
    return new Promise<void>(() => {});
  },
});
