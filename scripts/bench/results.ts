/**
 * From the samples of a run to its result rows: the median of the runs of each contender,
 * scenario and connection count, and its ratios to the Go runner and to the ceiling.
 *
 * @module
 */
import { CONTENDER_IDS, type ContenderId } from "./contenders.ts";
import type { Scenario } from "./scenarios.ts";

/** One measured window. */
export interface Sample {
  scenario: string;
  contender: ContenderId;
  conns: number;
  /** Calls per second. */
  rps: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  /** CPU time of the contender's whole process tree per call, in microseconds. */
  cpu_us_per_call: number;
  errors: number;
}

/** The medians of a contender's samples for one scenario and connection count. */
export interface Row extends Sample {
  /** How many samples the medians are of. */
  runs: number;
  /** Errors of all the samples together (not a median: any error matters). */
  errors: number;
  /** `rps` over the Go runner's for the same scenario and connections; null when it has none. */
  vs_go: number | null;
  /** `rps` over the ceiling's for the same phase and connections; null when not measured. */
  vs_ceiling: number | null;
}

/** The median (the mean of the middle two for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const MEDIAN_FIELDS = ["rps", "p50_us", "p90_us", "p99_us", "cpu_us_per_call"] as const;

/**
 * Groups samples into rows ordered by scenario (as in `scenarios`), connections, then contender
 * (ceiling, Go, floor, sandboxed, inline), and sets their ratios. The ceiling of a scenario is
 * the one measured in the same phase (request or response) at the same connection count.
 */
export function summarise(samples: readonly Sample[], scenarios: readonly Scenario[]): Row[] {
  const groups = new Map<string, Sample[]>();
  for (const s of samples) {
    const key = `${s.scenario}\0${s.conns}\0${s.contender}`;
    groups.set(key, [...groups.get(key) ?? [], s]);
  }
  const rows: Row[] = [];
  for (const group of groups.values()) {
    const row: Row = {
      ...group[0]!,
      runs: group.length,
      errors: group.reduce((sum, s) => sum + s.errors, 0),
      vs_go: null,
      vs_ceiling: null,
    };
    for (const field of MEDIAN_FIELDS) row[field] = median(group.map((s) => s[field]));
    rows.push(row);
  }
  const mode = (name: string) => scenarios.find((s) => s.name === name)?.mode;
  for (const row of rows) {
    const go = rows.find((r) =>
      r.contender === "go" && r.scenario === row.scenario && r.conns === row.conns
    );
    const ceiling = rows.find((r) =>
      r.contender === "ceiling" && mode(r.scenario) === mode(row.scenario) && r.conns === row.conns
    );
    row.vs_go = go && go.rps > 0 ? row.rps / go.rps : null;
    row.vs_ceiling = ceiling && ceiling.rps > 0 ? row.rps / ceiling.rps : null;
  }
  const order = (r: Row) => [
    scenarios.findIndex((s) => s.name === r.scenario),
    r.conns,
    CONTENDER_IDS.indexOf(r.contender),
  ];
  return rows.sort((a, b) => {
    const [x, y] = [order(a), order(b)];
    return x[0]! - y[0]! || x[1]! - y[1]! || x[2]! - y[2]!;
  });
}
