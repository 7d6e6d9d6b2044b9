/**
 * Replaces `console` in a plugin worker so that its output becomes log lines attributed to the
 * plugin, rate-limited so that a plugin cannot flood the runner's log.
 *
 * @module
 */
import { LogLevel } from "./messages.ts";

/** Longest line kept; the rest is cut. */
const MAX_LINE = 8192;

/** Lines per second a plugin may log before lines are dropped; set from the worker's init. */
export const consoleLimits = { linesPerSecond: 100 };

/** Sends every console call to `emit` as one formatted line. */
export function captureConsole(
  inspect: (value: unknown) => string,
  emit: (level: number, line: string) => void,
): void {
  let windowStart = 0;
  let lines = 0;
  let dropped = 0;

  const write = (level: number, args: unknown[]) => {
    const now = Date.now();
    if (now - windowStart >= 1000) {
      if (dropped > 0) {
        emit(
          LogLevel.Warn,
          `dropped ${dropped} console lines over the limit of ` +
            `${consoleLimits.linesPerSecond} per second`,
        );
      }
      windowStart = now;
      lines = 0;
      dropped = 0;
    }
    if (++lines > consoleLimits.linesPerSecond) {
      dropped++;
      return;
    }
    let line = "";
    try {
      line = args.map((arg) => typeof arg === "string" ? arg : inspect(arg)).join(" ");
    } catch {
      line = "(a console argument could not be formatted)";
    }
    emit(level, line.length > MAX_LINE ? line.slice(0, MAX_LINE) + "…" : line);
  };

  const sink = (level: number) => (...args: unknown[]) => write(level, args);
  const replacement: Partial<Record<keyof Console, unknown>> = {
    log: sink(LogLevel.Info),
    info: sink(LogLevel.Info),
    debug: sink(LogLevel.Debug),
    trace: sink(LogLevel.Debug),
    warn: sink(LogLevel.Warn),
    error: sink(LogLevel.Error),
    dir: (value: unknown) => write(LogLevel.Info, [value]),
    table: (value: unknown) => write(LogLevel.Info, [value]),
    assert: (condition: unknown, ...args: unknown[]) => {
      if (!condition) write(LogLevel.Error, ["Assertion failed:", ...args]);
    },
  };
  for (const [key, value] of Object.entries(replacement)) {
    Object.defineProperty(console, key, { value, writable: true, configurable: true });
  }
}
