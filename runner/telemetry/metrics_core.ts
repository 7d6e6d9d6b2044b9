/**
 * Counters and histograms kept per plugin on the call path: plain numbers, no allocation per
 * observation. The metrics endpoint renders them.
 *
 * @module
 */

/** Outcomes a plugin call or conf can end in. */
export const OUTCOMES = [
  "ok",
  "error",
  "timeout",
  "oom",
  "crash",
  "denied",
  "bad_conf",
  "unavailable",
  "violation",
] as const;

/** One outcome. */
export type Outcome = typeof OUTCOMES[number];

/** A count per outcome. */
export class OutcomeCounters {
  readonly counts: Record<Outcome, number> = Object.fromEntries(
    OUTCOMES.map((outcome) => [outcome, 0]),
  ) as Record<Outcome, number>;

  /** Counts one `outcome`. */
  add(outcome: Outcome): void {
    this.counts[outcome]++;
  }
}

/** Upper bounds of the latency buckets, in milliseconds. */
export const LATENCY_BUCKETS_MS: readonly number[] = [
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  25,
  50,
  100,
  250,
  500,
  1000,
  2500,
  5000,
  10000,
];

/** A cumulative histogram in Prometheus' shape. */
export class Histogram {
  readonly buckets: number[] = new Array(LATENCY_BUCKETS_MS.length).fill(0);
  count = 0;
  sum = 0;

  /** Records one observation in milliseconds. */
  observe(ms: number): void {
    this.count++;
    this.sum += ms;
    for (let i = 0; i < LATENCY_BUCKETS_MS.length; i++) {
      if (ms <= LATENCY_BUCKETS_MS[i]!) {
        this.buckets[i]!++;
        return;
      }
    }
  }
}
