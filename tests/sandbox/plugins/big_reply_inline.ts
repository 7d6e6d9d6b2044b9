/** Fault (run inline): a reply body over APISIX's 16 MiB frame limit (PROTOCOL.md §2.1). */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { armed } from "./faults.ts";

export default definePlugin({
  name: "big_reply_inline",
  requestFilter(_conf, req, res) {
    if (!armed(req, res)) return;
    res.body = new Uint8Array(17 * 1024 * 1024).fill(0x61);
  },
});
