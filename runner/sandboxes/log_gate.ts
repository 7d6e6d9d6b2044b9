/**
 * The runner's own limit on what a plugin's log lines cost: lines per second and bytes per
 * second, counted where the lines arrive (the runner), because the limit inside the plugin's
 * worker runs in a realm the plugin can change. Lines over either budget are dropped unread and
 * reported in one line per second.
 *
 * @module
 */

/** Lets through at most `lines()` lines and `bytes()` bytes per second. */
export class LogGate {
  #lines: () => number;
  #bytes: () => number;
  #report: (droppedLines: number, droppedBytes: number) => void;
  #windowStart = -Infinity;
  #usedLines = 0;
  #usedBytes = 0;
  #droppedLines = 0;
  #droppedBytes = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * `lines` and `bytes` are read at each new second (a reload's new limits apply at once);
   * `report` gets what was dropped in a second, soon after it ends.
   */
  constructor(
    lines: () => number,
    bytes: () => number,
    report: (droppedLines: number, droppedBytes: number) => void,
  ) {
    this.#lines = lines;
    this.#bytes = bytes;
    this.#report = report;
  }

  /** Whether a line of `size` bytes may be logged now; counts it as dropped otherwise. */
  allow(size: number): boolean {
    const now = performance.now();
    if (now - this.#windowStart >= 1000) {
      this.#flush();
      this.#windowStart = now;
      this.#usedLines = 0;
      this.#usedBytes = 0;
    }
    if (this.#usedLines < this.#lines() && this.#usedBytes + size <= this.#bytes()) {
      this.#usedLines++;
      this.#usedBytes += size;
      return true;
    }
    if (this.#droppedLines++ === 0) {
      const timer = setTimeout(() => this.#flush(), this.#windowStart + 1000 - now);
      // A pending report must not keep a shutting-down runner alive.
      Deno.unrefTimer(timer);
      this.#timer = timer;
    }
    this.#droppedBytes += size;
    return false;
  }

  #flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#droppedLines === 0) return;
    const lines = this.#droppedLines;
    const bytes = this.#droppedBytes;
    this.#droppedLines = this.#droppedBytes = 0;
    this.#report(lines, bytes);
  }
}
