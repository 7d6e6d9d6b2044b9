/**
 * Per-minute counts, and the figures (median, percentiles, growth after the warm-up) the summary computes from them.
 *
 * @module
 */
import type { Sample } from "./sampling.ts";

/** Counts for one minute. */
export interface Minute {
  minute: number;
  requests: number;
  ok: number;
  /** Errors with a known cause, by kind. */
  explained: Record<string, number>;
  /** Errors without one, by kind. */
  unexplained: Record<string, number>;
  abandoned: number;
  reconnects: number;
  latencies: number[];
  samples: Sample[];
  restarts: number;
  /** With --trace-gc: the runner's V8 heap after the minute's last full GC. */
  heap: { usedMb: number; committedMb: number } | null;
}

/** An empty minute. */
export function newMinute(minute: number): Minute {
  return {
    minute,
    requests: 0,
    ok: 0,
    explained: {},
    unexplained: {},
    abandoned: 0,
    reconnects: 0,
    latencies: [],
    samples: [],
    restarts: 0,
    heap: null,
  };
}

/** Counts one more of `kind`. */
export function bump(counts: Record<string, number>, kind: string): void {
  counts[kind] = (counts[kind] ?? 0) + 1;
}

/**
 * The middle of a minute's samples: a sandbox sampled while it restarts (fewer descriptors, a
 * fresh heap) should not move the minute's figure.
 */
export function median(values: number[]): number {
  if (!values.length) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The arithmetic mean (0 for none). */
export function mean(values: number[]): number {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : 0;
}

/** The `p`th percentile, nearest rank (0 for none). */
export function percentile(values: number[], p: number): number {
  if (!values.length) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** `value` rounded to `digits` decimals. */
export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Per-minute means of one measure, and whether it grew more than 10 % after the warm-up. */
export function growth(values: number[], warmup: number) {
  const judged = values.slice(warmup);
  const baseline = judged[0] ?? 0;
  const max = judged.length ? Math.max(...judged) : 0;
  const last = judged.at(-1) ?? 0;
  return {
    perMinute: values.map((v) => round(v)),
    baseline: round(baseline),
    max: round(max),
    last: round(last),
    maxRatio: baseline ? round(max / baseline, 3) : null,
    lastRatio: baseline ? round(last / baseline, 3) : null,
    flagged: baseline > 0 && max > baseline * 1.1,
  };
}
