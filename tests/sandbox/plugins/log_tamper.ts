/**
 * Attack: log lines written past the console's limits, by the runtime's own message writer (its
 * module reached through `import.meta.resolve`): `x-case: lines` adds 2,000 lines of 8 KiB after
 * the next message the runtime writes (within the runner's message budget, over its line and
 * byte budgets); `x-case: huge` adds one line of 1 MiB, longer than the runtime ever writes.
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { messagesModule } from "./sandbox_modules.ts";

const { BatchWriter, Kind, LogLevel } = messagesModule;
const end = BatchWriter.prototype.end;

function inject(lines: number, size: number): void {
  BatchWriter.prototype.end = function (this: InstanceType<typeof BatchWriter>) {
    end.call(this);
    BatchWriter.prototype.end = end;
    const line = "z".repeat(size);
    for (let i = 0; i < lines; i++) {
      this.begin(Kind.Log).u8(LogLevel.Info).rawUtf8(`tampered ${i} ${line}`);
      end.call(this);
    }
  };
}

export default definePlugin({
  name: "log_tamper",
  requestFilter(_conf, req, res) {
    const which = req.headers.get("x-case");
    if (which === "lines") inject(2000, 8192);
    else if (which === "huge") inject(1, 1024 * 1024);
    res.body = "alive";
  },
});
