import { deepEqual, equal } from "node:assert/strict";
import { median, summarise } from "./results.ts";
import { selectScenarios } from "./scenarios.ts";
import { sample } from "./test_rows.ts";

Deno.test("median of odd and even counts", () => {
  equal(median([3, 1, 2]), 2);
  equal(median([4, 1, 3, 2]), 2.5);
  equal(Number.isNaN(median([])), true);
});

Deno.test("rows are the medians of their runs, errors summed, ordered scenario, conns, contender", () => {
  const scenarios = selectScenarios("say,rewrite-var");
  const rows = summarise([
    sample("inline", 1, 90, "rewrite-var"),
    sample("process", 4, 300, "say", { p99_us: 900, errors: 1 }),
    sample("process", 4, 100, "say", { p99_us: 500 }),
    sample("process", 4, 200, "say", { p99_us: 700, errors: 2 }),
    sample("go", 4, 400),
    sample("ceiling", 4, 1000),
    sample("go", 1, 50),
  ], scenarios);
  deepEqual(rows.map((r) => `${r.scenario}:${r.conns}:${r.contender}`), [
    "say:1:go",
    "say:4:ceiling",
    "say:4:go",
    "say:4:process",
    "rewrite-var:1:inline",
  ]);
  const process = rows[3]!;
  equal(process.rps, 200);
  equal(process.p99_us, 700);
  equal(process.errors, 3);
  equal(process.runs, 3);
  equal(process.vs_go, 0.5);
  equal(process.vs_ceiling, 0.2);
  equal(rows[0]!.vs_ceiling, null, "no ceiling at 1 connection");
  equal(rows[4]!.vs_go, null, "no Go row for rewrite-var");
});

Deno.test("a scenario is set against the ceiling of its own phase", () => {
  const scenarios = selectScenarios("say,rewrite-var,resp-rewrite");
  const rows = summarise([
    sample("ceiling", 16, 1000, "say"),
    sample("ceiling", 16, 500, "resp-rewrite"),
    sample("inline", 16, 100, "rewrite-var"),
    sample("inline", 16, 100, "resp-rewrite"),
  ], scenarios);
  const ratio = (scenario: string) =>
    rows.find((r) => r.scenario === scenario && r.contender === "inline")!.vs_ceiling;
  equal(ratio("rewrite-var"), 0.1);
  equal(ratio("resp-rewrite"), 0.2);
});
