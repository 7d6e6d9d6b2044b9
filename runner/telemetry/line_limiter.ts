/**
 * A per-second budget for log lines the runner writes once per call (a plugin that throws on
 * every request, calls that keep missing their deadline): the first lines of each second are
 * logged, the rest are counted and reported in one line when the second ends.
 *
 * @module
 */

/** Lets through at most `perSecond()` lines per second and reports how many it held back. */
export class LineLimiter {
  #perSecond: () => number;
  #report: (held: number, perSecond: number) => void;
  #windowStart = -Infinity;
  #lines = 0;
  #held = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * `perSecond` is read at each new second (so a reload's new limit applies at once); `report`
   * gets the count of lines held back in a second, soon after it ends.
   */
  constructor(
    perSecond: () => number,
    report: (held: number, perSecond: number) => void,
  ) {
    this.#perSecond = perSecond;
    this.#report = report;
  }

  /** Whether a line may be logged now; counts it as held back otherwise. */
  allow(): boolean {
    const now = performance.now();
    if (now - this.#windowStart >= 1000) {
      this.#flush();
      this.#windowStart = now;
      this.#lines = 0;
    }
    if (++this.#lines <= this.#perSecond()) return true;
    if (this.#held++ === 0) {
      const timer = setTimeout(() => this.#flush(), this.#windowStart + 1000 - now);
      // A pending report must not keep a shutting-down runner alive.
      Deno.unrefTimer(timer);
      this.#timer = timer;
    }
    return false;
  }

  #flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#held === 0) return;
    const held = this.#held;
    this.#held = 0;
    this.#report(held, this.#perSecond());
  }
}
