import { deepEqual, equal } from "node:assert/strict";
import { LogGate } from "./log_gate.ts";

Deno.test("a log gate holds lines and bytes per second, and reports what it dropped", () => {
  const reports: Array<[number, number]> = [];
  const gate = new LogGate(() => 3, () => 100, (lines, bytes) => reports.push([lines, bytes]));
  // Bytes first: 60 + 40 fill the budget, the next line of 1 byte is over it.
  deepEqual([gate.allow(60), gate.allow(40), gate.allow(1)], [true, true, false]);
  const lines = new LogGate(() => 2, () => 1 << 20, () => {});
  deepEqual([lines.allow(1), lines.allow(1), lines.allow(1)], [true, true, false]);
  equal(reports.length, 0, "reported when the second ends, not before");
});
