/**
 * `hoard`: keeps 48 MiB of ArrayBuffer memory per call, outside the V8 heap limit, so only the
 * runner's resident-memory watchdog can stop it.
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";

const kept: Uint8Array[] = [];

export default definePlugin({
  name: "hoard",
  requestFilter(_conf, _req, res) {
    // Filled, so that the pages are really resident.
    kept.push(new Uint8Array(48 * 1024 * 1024).fill(1));
    res.body = `holding ${kept.length * 48} MiB`;
  },
});
