import { equal, match } from "node:assert/strict";
import { formatRate, formatRatio, memoryTable, scenarioTable, summaryTable } from "./table.ts";
import { selectScenarios } from "./scenarios.ts";
import { row } from "./test_rows.ts";

Deno.test("rates are grouped by thousands, ratios get two decimals and a ×", () => {
  equal(formatRate(66046.6), "66,047");
  equal(formatRatio(0.8512, "n/a"), "0.85×");
  equal(formatRatio(12.34, "n/a"), "12.3×");
  equal(formatRatio(null, "n/a"), "n/a");
});

Deno.test("a scenario table has a row per connection count and runner with every figure", () => {
  const [say] = selectScenarios("say");
  const table = scenarioTable(say!, [
    row("go", 4, 50000, { vs_go: 1, vs_ceiling: 0.25, cpu_us_per_call: 12.34, p50_us: 70.4 }),
    row("process", 4, 40000, { vs_go: 0.8, vs_ceiling: 0.2, p99_us: 1234.6, errors: 2 }),
    row("process", 4, 1, { scenario: "other" }),
  ], true);
  const lines = table.split("\n");
  equal(lines.length, 4);
  equal(
    lines[0],
    "| conns | runner | calls/s | × Go | × ceiling | CPU µs/call | p50 µs | p99 µs | errors |",
  );
  equal(lines[2], "| 4 | Go runner | 50,000 | 1.00× | 0.25× | 12.3 | 70 | 300 | 0 |");
  equal(lines[3], "| 4 | Deno, sandboxed | 40,000 | 0.80× | 0.20× | 10.0 | 100 | 1235 | 2 |");
});

Deno.test("× Go says n/a where the Go runner has no equivalent, – where it was not measured", () => {
  const [rewrite, say] = selectScenarios("rewrite-var,say");
  match(
    scenarioTable(rewrite!, [row("inline", 1, 10, { scenario: "rewrite-var" })], true),
    /\| n\/a \|/,
  );
  match(scenarioTable(say!, [row("inline", 1, 10)], false), /\| n\/a \|/);
  match(scenarioTable(say!, [row("inline", 1, 10)], true), /\| – \| – \|/);
});

Deno.test("the summary has a row per runner and a column per connection count", () => {
  const summary = summaryTable("say", [
    row("go", 1, 20000),
    row("go", 64, 100000, { p99_us: 4800 }),
    row("inline", 1, 10000, { vs_go: 0.5 }),
    row("inline", 64, 75000, { vs_go: 0.75, cpu_us_per_call: 12.6 }),
  ]).split("\n");
  equal(
    summary[0],
    "| runner | 1 conn: calls/s (× Go) | 64 conns: calls/s (× Go) | CPU µs/call at 64 | p99 µs at 64 |",
  );
  equal(summary[2], "| Go runner | 20,000 | 100,000 | 10.0 | 4800 |");
  equal(summary[3], "| Deno, inline | 10,000 (0.50×) | 75,000 (0.75×) | 12.6 | 300 |");
});

Deno.test("the memory table lists each runner's tree", () => {
  const table = memoryTable(
    new Map([["process", { rssMb: 80.4, privateMb: 33.2, descendantsRssMb: 250.6 }]]),
  );
  equal(table.split("\n")[2], "| Deno, sandboxed | 80 | 33 | 251 |");
});
