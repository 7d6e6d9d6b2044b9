/**
 * Fault: a message flood. The console's per-second limit runs inside the plugin's own realm, so
 * a hostile plugin can defeat it: this one patches the runtime's message writer (its module is
 * already loaded, so importing it needs no permission) to add a hundred log messages to every
 * message the runtime writes. The runner's own count of messages per second must catch it.
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { armed } from "./faults.ts";

export default definePlugin({
  name: "log_flood",
  async requestFilter(_conf, req, res) {
    if (!armed(req, res)) return;
    const { BatchWriter, Kind, LogLevel } = await import("../../../sandbox/messages.ts");
    const end = BatchWriter.prototype.end;
    let inside = false;
    BatchWriter.prototype.end = function (this: InstanceType<typeof BatchWriter>) {
      end.call(this);
      if (inside) return;
      inside = true;
      for (let i = 0; i < 100; i++) {
        this.begin(Kind.Log).u8(LogLevel.Info).rawUtf8(`flood line ${i}`);
        end.call(this);
      }
      inside = false;
    };
    for (;;) {
      console.log("one line the console limit lets through");
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  },
});
