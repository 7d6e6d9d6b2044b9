/**
 * The Markdown tables of a benchmark: one per scenario, a memory table, and the short `say`
 * summary the README shows.
 *
 * @module
 */
import { CONTENDER_LABELS, type ContenderId } from "./contenders.ts";
import type { Row } from "./results.ts";
import type { Scenario } from "./scenarios.ts";
import type { TreeMemory } from "./cpu.ts";

/** `66046.2` → `66,046`. */
export function formatRate(rps: number): string {
  return Math.round(rps).toLocaleString("en-US");
}

/** A ratio as `0.85×`; `null` as `na` (the caller says what is missing). */
export function formatRatio(ratio: number | null, na: string): string {
  if (ratio === null || !Number.isFinite(ratio)) return na;
  return `${ratio.toFixed(ratio >= 10 ? 1 : 2)}×`;
}

function markdownTable(header: string[], body: string[][]): string {
  return [
    `| ${header.join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
    ...body.map((cells) => `| ${cells.join(" | ")} |`),
  ].join("\n");
}

/** Why a scenario's "× Go" column is empty, if it is. */
export function goMissing(scenario: Scenario, goRan: boolean): string | null {
  if ("missing" in scenario.go) return `n/a: ${scenario.go.missing}`;
  if (!goRan) return "the Go runner was not measured in this run";
  return null;
}

/**
 * One scenario's table: a row per connection count and contender with calls/s, the ratios to
 * the Go runner and the ceiling, CPU per call and latency.
 */
export function scenarioTable(scenario: Scenario, rows: readonly Row[], goRan: boolean): string {
  const mine = rows.filter((r) => r.scenario === scenario.name);
  const goNa = goMissing(scenario, goRan) === null ? "–" : "n/a";
  return markdownTable(
    [
      "conns",
      "runner",
      "calls/s",
      "× Go",
      "× ceiling",
      "CPU µs/call",
      "p50 µs",
      "p99 µs",
      "errors",
    ],
    mine.map((r) => [
      String(r.conns),
      CONTENDER_LABELS[r.contender],
      formatRate(r.rps),
      formatRatio(r.vs_go, goNa),
      formatRatio(r.vs_ceiling, "–"),
      r.cpu_us_per_call.toFixed(1),
      r.p50_us.toFixed(0),
      r.p99_us.toFixed(0),
      String(r.errors),
    ]),
  );
}

/** Resident memory of each contender's process tree at the end of the run. */
export function memoryTable(memory: ReadonlyMap<ContenderId, TreeMemory>): string {
  return markdownTable(
    ["runner", "RSS MB", "own memory MB", "child processes' RSS MB"],
    [...memory].map(([id, m]) => [
      CONTENDER_LABELS[id],
      m.rssMb.toFixed(0),
      m.privateMb.toFixed(0),
      m.descendantsRssMb.toFixed(0),
    ]),
  );
}

/**
 * The README's summary of one scenario: a row per contender, calls/s and the ratio to Go per
 * connection count, and CPU per call and p99 at the highest count.
 */
export function summaryTable(scenario: string, rows: readonly Row[]): string {
  const mine = rows.filter((r) => r.scenario === scenario);
  const conns = [...new Set(mine.map((r) => r.conns))].sort((a, b) => a - b);
  const most = conns.at(-1);
  const contenders = [...new Set(mine.map((r) => r.contender))];
  return markdownTable(
    [
      "runner",
      ...conns.map((c) => `${c} conn${c === 1 ? "" : "s"}: calls/s (× Go)`),
      `CPU µs/call at ${most}`,
      `p99 µs at ${most}`,
    ],
    contenders.map((id) => {
      const at = (c: number | undefined) => mine.find((r) => r.contender === id && r.conns === c);
      const cell = (c: number) => {
        const r = at(c);
        if (!r) return "–";
        return id === "go" || r.vs_go === null
          ? formatRate(r.rps)
          : `${formatRate(r.rps)} (${formatRatio(r.vs_go, "–")})`;
      };
      const top = at(most);
      return [
        CONTENDER_LABELS[id],
        ...conns.map(cell),
        top ? top.cpu_us_per_call.toFixed(1) : "–",
        top ? top.p99_us.toFixed(0) : "–",
      ];
    }),
  );
}
