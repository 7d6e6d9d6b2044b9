/**
 * The run plan: every load-generator run of a benchmark, in order. Contenders are interleaved:
 * for each scenario and connection count, run 1 drives each contender once, then run 2 does
 * again starting from the next contender, and so on, so that a drift of the machine during the
 * run (another process waking up, the CPU's clock) spreads over all of them instead of landing
 * on whichever ran last.
 *
 * @module
 */
import { type ContenderId, runs } from "./contenders.ts";
import type { Scenario } from "./scenarios.ts";

/** One warm-up plus measured window of one contender. */
export interface Step {
  scenario: Scenario;
  contender: ContenderId;
  conns: number;
  /** 1-based. */
  run: number;
  runs: number;
}

/** What to measure. */
export interface PlanInput {
  scenarios: readonly Scenario[];
  /** Contenders that are available (started, or startable), in table order. */
  contenders: readonly ContenderId[];
  conns: readonly number[];
  runs: number;
}

/** Every step of a run, in the order it happens. */
export function buildPlan(input: PlanInput): Step[] {
  const steps: Step[] = [];
  for (const scenario of input.scenarios) {
    const here = input.contenders.filter((id) => runs(id, scenario, input.scenarios));
    for (const conns of input.conns) {
      for (let run = 1; run <= input.runs; run++) {
        const shift = (run - 1) % Math.max(here.length, 1);
        for (const contender of [...here.slice(shift), ...here.slice(0, shift)]) {
          steps.push({ scenario, contender, conns, run, runs: input.runs });
        }
      }
    }
  }
  return steps;
}

/** Seconds a step takes beyond its warm-up and window: starting the loadgen, connecting, CPU sampling. */
export const STEP_OVERHEAD_S = 0.25;

/** The planned length of one step, in seconds. */
export function stepSeconds(warmupS: number, durationS: number): number {
  return warmupS + durationS + STEP_OVERHEAD_S;
}

/**
 * Time left, in milliseconds, after `done` of `total` steps: the remaining steps at the average
 * pace measured so far, or at the planned pace before any step has finished.
 */
export function estimateLeftMs(
  done: number,
  total: number,
  stepsElapsedMs: number,
  plannedStepMs: number,
): number {
  const pace = done > 0 ? stepsElapsedMs / done : plannedStepMs;
  return Math.max(0, total - done) * pace;
}
