/**
 * Fault: a flood of large messages that answer nothing. It patches the runtime's message writer
 * (as log_flood does) to add a result of 1 MiB for a call that does not exist after every message
 * the runtime writes, then logs a line every millisecond: its console lets 100 a second through,
 * far fewer messages than the flood count, but 100 MiB a second the runner would read for
 * nothing (paced, so the sandbox's own memory watch does not end it first). The runner's byte
 * limit must catch it.
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { armed } from "./faults.ts";

export default definePlugin({
  name: "stray_flood",
  async requestFilter(_conf, req, res) {
    if (!armed(req, res)) return;
    const { BatchWriter, Kind } = await import("../../../sandbox/messages.ts");
    const end = BatchWriter.prototype.end;
    const filler = new Uint8Array(1024 * 1024);
    let inside = false;
    BatchWriter.prototype.end = function (this: InstanceType<typeof BatchWriter>) {
      end.call(this);
      if (inside) return;
      inside = true;
      this.begin(Kind.Result).u32(0xfffffff0).raw(filler);
      end.call(this);
      inside = false;
    };
    for (;;) {
      console.log("one line");
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  },
});
