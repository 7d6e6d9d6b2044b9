/**
 * Spreads work that grows with what a plugin sent (reading its batches, decoding its patch,
 * building the reply from it) over turns of the event loop, so that no plugin's reply holds the
 * runner's one thread for more than {@linkcode SLICE_MS} before every other connection gets its
 * turn. Work is written as {@linkcode Steps} (a generator that yields every few hundred entries);
 * small work finishes at once, without a timer or a promise.
 *
 * One slicer serves the whole runner: the budget is shared, so a thousand large replies settled
 * in the same turn still cost one slice per turn, taken in rotation.
 *
 * @module
 */
import type { Steps } from "../../protocol/steps.ts";

/** Most milliseconds of sliced work between two turns of the event loop. */
export const SLICE_MS = 2;

interface Task {
  steps: Steps<unknown>;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/** Runs {@linkcode Steps} in slices of at most {@linkcode SLICE_MS} per turn of the loop. */
export class Slicer {
  #queue: Task[] = [];
  /** When the current slice's budget ends; -Infinity when no slice is open. */
  #sliceEnds = -Infinity;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #sliceMs: number;

  constructor(sliceMs = SLICE_MS) {
    this.#sliceMs = sliceMs;
  }

  /** Tasks waiting for a turn (for tests and metrics). */
  get waiting(): number {
    return this.#queue.length;
  }

  /**
   * Runs `steps`: at once, to the end, if it fits in the current slice (the value is returned),
   * else the rest later, in later turns (a promise of the value is returned). Work already
   * waiting goes first.
   */
  run<T>(steps: Steps<T>): T | Promise<T> {
    if (this.#queue.length === 0) {
      const first = steps.next();
      if (first.done) return first.value;
      const now = performance.now();
      // The first yield opens a slice; the timer that closes it gives the loop its turn.
      if (this.#sliceEnds === -Infinity) this.#open(now);
      while (now < this.#sliceEnds) {
        const next = steps.next();
        if (next.done) return next.value;
        if (performance.now() >= this.#sliceEnds) break;
      }
    }
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ steps, resolve: resolve as (value: unknown) => void, reject });
    });
  }

  #open(now: number): void {
    this.#sliceEnds = now + this.#sliceMs;
    this.#timer ??= setTimeout(() => this.#turn(), 0);
  }

  /** A new turn of the loop: the queued work gets one slice, in rotation. */
  #turn(): void {
    this.#timer = undefined;
    this.#sliceEnds = -Infinity;
    if (this.#queue.length === 0) return;
    this.#open(performance.now());
    // At least one piece per turn, however short the slice.
    let first = true;
    while (this.#queue.length && (first || performance.now() < this.#sliceEnds)) {
      first = false;
      const task = this.#queue[0]!;
      let finished = false;
      try {
        for (;;) {
          const next = task.steps.next();
          if (next.done) {
            finished = true;
            task.resolve(next.value);
            break;
          }
          if (performance.now() >= this.#sliceEnds) break;
        }
      } catch (error) {
        finished = true;
        task.reject(error);
      }
      this.#queue.shift();
      // Unfinished: to the back, so every waiting task moves each turn.
      if (!finished) this.#queue.push(task);
    }
  }
}

/** The runner's slicer. */
export const slicer: Slicer = new Slicer();
