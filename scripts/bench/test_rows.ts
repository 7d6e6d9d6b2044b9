/**
 * Rows and steps shared by the benchmark tool's tests.
 *
 * @module
 */
import type { ContenderId } from "./contenders.ts";
import type { Row, Sample } from "./results.ts";

/** A sample with the given figures and plausible others. */
export function sample(
  contender: ContenderId,
  conns: number,
  rps: number,
  scenario = "say",
  extra: Partial<Sample> = {},
): Sample {
  return {
    scenario,
    contender,
    conns,
    rps,
    p50_us: 100,
    p90_us: 150,
    p99_us: 300,
    cpu_us_per_call: 10,
    errors: 0,
    ...extra,
  };
}

/** A row as `summarise` makes it, without ratios unless given. */
export function row(
  contender: ContenderId,
  conns: number,
  rps: number,
  extra: Partial<Row> = {},
): Row {
  return { ...sample(contender, conns, rps), runs: 3, vs_go: null, vs_ceiling: null, ...extra };
}
