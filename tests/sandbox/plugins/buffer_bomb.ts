/** Fault: fills memory outside the V8 heap (ArrayBuffers) until the resident-memory watchdog fires. */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { armed } from "./faults.ts";

const hoard: Uint8Array[] = [];

export default definePlugin({
  name: "buffer_bomb",
  async requestFilter(_conf, req, res) {
    if (!armed(req, res)) return;
    for (;;) {
      hoard.push(new Uint8Array(16 * 1024 * 1024).fill(1));
      // Yield now and then, as real code would; the watchdog does not depend on it.
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  },
});
