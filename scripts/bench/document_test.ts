import { equal, match } from "node:assert/strict";
import { HOW_TO_READ, renderDocument, type RunMeta } from "./document.ts";
import { selectScenarios } from "./scenarios.ts";
import { row } from "./test_rows.ts";

const META: RunMeta = {
  date: "2026-12-06T03:00:00.000Z",
  deno: "2.9.6",
  cpus: 2,
  durationS: 5,
  warmupS: 1,
  runs: 3,
  loadBefore: "0.10 0.20 0.30",
  loadAfter: "1.50 0.90 0.40",
  measured: ["go", "inline"],
  skipped: [],
  warnings: [],
  chart: "benchmarks.svg",
};

Deno.test("the document says how the run was made, how to read it, then a table per scenario", () => {
  const doc = renderDocument(META, selectScenarios("say,rewrite-var"), [
    row("go", 1, 20000, { vs_go: 1 }),
    row("inline", 1, 10000, { vs_go: 0.5 }),
    row("inline", 1, 5000, { scenario: "rewrite-var" }),
  ], new Map([["inline", { rssMb: 110, privateMb: 60, descendantsRssMb: 0 }]]));
  match(doc, /^# Benchmarks\n\nMeasured 2026-12-06T03:00:00.000Z with Deno 2\.9\.6 on 2 CPUs/);
  match(doc, /medians of 3 runs of 5 s, each after a 1 s warm-up/);
  match(doc, /!\[say: calls\/s by connections, per runner\]\(benchmarks\.svg\)/);
  equal(doc.includes(HOW_TO_READ.trim()), true);
  match(doc, /- \*\*Go runner\*\*: the official Apache APISIX Go plugin runner/);
  equal(doc.includes("- **C++ ceiling**"), false, "only measured runners are described");
  match(doc, /### say\n\n`say` answers .*The Go runner gets `say=\{"body":"hello"\}`\./s);
  match(doc, /### rewrite-var\n\n.*× Go: n\/a: the Go runner has no request-rewrite\./s);
  match(doc, /\| 1 \| Deno, inline \| 5,000 \| n\/a \| – \|/);
  match(doc, /\| Deno, inline \| 110 \| 60 \| 0 \|/);
});

Deno.test("labels, warnings and runners not measured come first; no chart without say", () => {
  const doc = renderDocument(
    {
      ...META,
      measured: ["inline"],
      skipped: ["the Go runner (no executable at /x)"],
      warnings: ["Deno, inline refused a conf"],
      label: "Short run",
    },
    selectScenarios("digest-1k"),
    [row("inline", 1, 5000, { scenario: "digest-1k" })],
    new Map(),
  );
  match(doc, /^# Benchmarks\n\n> \*\*Short run\.\*\*\n\n> \*\*Warning\*\*: Deno, inline refused/);
  match(doc, /Not measured: the Go runner \(no executable at \/x\)\./);
  equal(doc.includes("benchmarks.svg"), false);
});
