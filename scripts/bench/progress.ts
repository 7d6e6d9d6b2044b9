/**
 * Progress of a benchmark run. On a terminal: one line, rewritten in place, saying what runs,
 * step n of N, the time spent and the time left. Elsewhere (CI, a pipe, a log file): one line
 * per finished scenario, so a log shows the run advancing without a line per step.
 *
 * @module
 */
import { CONTENDER_LABELS } from "./contenders.ts";
import { estimateLeftMs, type Step } from "./plan.ts";

/** `75` → `1m15s`, `3725` s → `1h02m`, `9` → `9s`; from milliseconds. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}

/** What the progress line shows. */
export interface ProgressState {
  /** The step that is running. */
  step: Step;
  /** 1-based position of `step` in the plan. */
  index: number;
  total: number;
  elapsedMs: number;
  leftMs: number;
}

/**
 * The terminal progress line, cut to `width` columns (a line longer than the terminal would
 * wrap, and `\r` would then rewrite only its last part).
 */
export function formatProgressLine(state: ProgressState, width: number): string {
  const { step } = state;
  const line =
    `bench [${String(state.index).padStart(String(state.total).length)}/${state.total}] ` +
    `${step.scenario.name} · ${CONTENDER_LABELS[step.contender]} · ${step.conns} conn${
      step.conns === 1 ? "" : "s"
    } · run ${step.run}/${step.runs} · ${formatDuration(state.elapsedMs)} elapsed · ~${
      formatDuration(state.leftMs)
    } left`;
  return line.length > width ? line.slice(0, Math.max(0, width - 1)) + "…" : line;
}

/** The line printed off a terminal when a scenario's last step has finished. */
export function formatScenarioDone(
  scenario: string,
  done: number,
  total: number,
  elapsedMs: number,
  leftMs: number,
): string {
  return `bench: ${scenario} done (${done}/${total} steps, ${formatDuration(elapsedMs)} elapsed, ~${
    formatDuration(leftMs)
  } left)`;
}

/** Where progress goes; a terminal gets the updating line. */
export interface ProgressSink {
  isTerminal(): boolean;
  /** Terminal width in columns (only asked when `isTerminal()`). */
  columns(): number;
  write(text: string): void;
}

/** The process's stderr as a progress sink. */
export const STDERR_SINK: ProgressSink = {
  isTerminal: () => Deno.stderr.isTerminal(),
  columns: () => {
    // A pseudo-terminal without a window size (script, some CI runners) reports 0 columns.
    try {
      const { columns } = Deno.consoleSize();
      return columns >= 40 ? columns : 100;
    } catch {
      return 100;
    }
  },
  write: (text) => {
    Deno.stderr.writeSync(new TextEncoder().encode(text));
  },
};

/** Follows a run through its plan and shows it on a sink. */
export class Progress {
  readonly #steps: readonly Step[];
  readonly #sink: ProgressSink;
  readonly #plannedStepMs: number;
  readonly #now: () => number;
  readonly #startedAt: number;
  readonly #terminal: boolean;
  readonly #refreshMs: number;
  #done = 0;
  #stepsMs = 0;
  #stepStartedAt = 0;
  #index = -1;
  #line = "";
  #timer: ReturnType<typeof setInterval> | undefined;

  /**
   * @param plannedStepMs the planned length of one step, for the estimate before any has ended.
   * @param now the clock (milliseconds).
   * @param refreshMs how often a terminal line is redrawn within a step, so the clock moves
   *   during a 6 s window (0: only when a step starts).
   */
  constructor(
    steps: readonly Step[],
    plannedStepMs: number,
    sink: ProgressSink = STDERR_SINK,
    now: () => number = () => performance.now(),
    refreshMs = 1000,
  ) {
    this.#steps = steps;
    this.#sink = sink;
    this.#plannedStepMs = plannedStepMs;
    this.#now = now;
    this.#startedAt = now();
    this.#terminal = sink.isTerminal();
    this.#refreshMs = refreshMs;
  }

  #leftMs(): number {
    return estimateLeftMs(this.#done, this.#steps.length, this.#stepsMs, this.#plannedStepMs);
  }

  #draw(): void {
    const now = this.#now();
    this.#line = formatProgressLine({
      step: this.#steps[this.#index]!,
      index: this.#index + 1,
      total: this.#steps.length,
      elapsedMs: now - this.#startedAt,
      // The running step's part of the estimate shrinks as it runs.
      leftMs: Math.max(0, this.#leftMs() - (now - this.#stepStartedAt)),
    }, this.#sink.columns());
    this.#sink.write(`\r\x1b[2K${this.#line}`);
  }

  /** Says how long the run is planned to take, before it starts. */
  announce(contenders: number): void {
    this.#sink.write(
      `bench: ${this.#steps.length} steps (a warm-up and a window each) over ${contenders} runners, about ${
        formatDuration(this.#steps.length * this.#plannedStepMs)
      }\n`,
    );
  }

  /** The step at `index` (0-based) starts. */
  start(index: number): void {
    this.#stepStartedAt = this.#now();
    this.#index = index;
    if (!this.#terminal) return;
    this.#draw();
    if (this.#refreshMs > 0 && this.#timer === undefined) {
      const timer = setInterval(() => this.#draw(), this.#refreshMs);
      // A run that fails must still end: the redraw does not keep the process alive.
      Deno.unrefTimer(timer);
      this.#timer = timer;
    }
  }

  /** The step at `index` (0-based) has finished. */
  finish(index: number): void {
    this.#done++;
    this.#stepsMs += this.#now() - this.#stepStartedAt;
    const step = this.#steps[index]!;
    const next = this.#steps[index + 1];
    if (!this.#terminal && next?.scenario !== step.scenario) {
      this.#sink.write(
        formatScenarioDone(
          step.scenario.name,
          this.#done,
          this.#steps.length,
          this.#now() - this.#startedAt,
          this.#leftMs(),
        ) + "\n",
      );
    }
  }

  /** Prints a message without garbling the progress line (which is redrawn under it). */
  note(message: string): void {
    if (this.#terminal && this.#line) {
      this.#sink.write(`\r\x1b[2K${message}\n${this.#line}`);
    } else {
      this.#sink.write(message + "\n");
    }
  }

  /** Clears the progress line at the end of the run. */
  end(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#terminal && this.#line) this.#sink.write("\r\x1b[2K");
    this.#line = "";
  }
}
