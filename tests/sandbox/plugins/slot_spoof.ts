/**
 * Attack: speak for the other plugin of its shared sandbox. Plugin code can reach the channel
 * writer of its own worker through the prototypes it shares with it; this one rewrites the slot
 * byte of every frame header its worker writes (the byte before each batch in the writer's
 * buffer) to the other slot's. The runner binds each connection to the slot whose secret opened
 * it, so the frame is a violation and the sandbox is killed.
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { armed } from "./faults.ts";

export default definePlugin({
  name: "slot_spoof",
  requestFilter(_conf, req, res) {
    if (!armed(req, res)) return;
    const set = Uint8Array.prototype.set;
    Uint8Array.prototype.set = function (
      this: Uint8Array,
      source: ArrayLike<number>,
      offset?: number,
    ) {
      // The channel writer's buffer (64 KiB and up): [u32 length][u8 slot] before the batch.
      if (offset !== undefined && offset >= 5 && this.length >= 65536) {
        this[offset - 1] = this[offset - 1] === 0 ? 1 : 0;
      }
      return set.call(this, source, offset);
    } as typeof set;
  },
});
