/**
 * Replaces `console` in a plugin worker so that its output becomes log lines attributed to the
 * plugin, rate-limited so that a well-meaning plugin cannot flood the runner's log. The limit
 * runs in the plugin's own realm, so a hostile plugin can defeat it (by patching the runtime's
 * classes); the runner counts messages per second on its side as well (plugin_host.ts).
 *
 * @module
 */
import { LogLevel } from "./messages.ts";

/** Longest line kept; the rest is cut. */
const MAX_LINE = 8192;

/** A plugin's log output: rate-limited lines, and the limit (set from the worker's init). */
export interface PluginLog {
  /** Logs one line at `level` (a {@linkcode LogLevel}), unless the second's lines are used up. */
  line(level: number, text: string): void;
  /** Sets the lines per second a plugin may log before lines are dropped (and counted). */
  setLimit(linesPerSecond: number): void;
}

/**
 * Passes lines to `emit`, at most `linesPerSecond` a second (100 until
 * {@linkcode PluginLog.setLimit}), each cut at 8 KiB; the dropped ones are counted in one line.
 */
export function limitedLog(emit: (level: number, line: string) => void): PluginLog {
  // Taken before plugin code runs: a plugin that replaces Date.now does not move this clock.
  const now = Date.now;
  let linesPerSecond = 100;
  let windowStart = 0;
  let lines = 0;
  let dropped = 0;

  const line = (level: number, text: string) => {
    const at = now();
    if (at - windowStart >= 1000) {
      if (dropped > 0) {
        emit(
          LogLevel.Warn,
          `dropped ${dropped} console lines over the limit of ${linesPerSecond} per second`,
        );
      }
      windowStart = at;
      lines = 0;
      dropped = 0;
    }
    if (++lines > linesPerSecond) {
      dropped++;
      return;
    }
    emit(level, text.length > MAX_LINE ? text.slice(0, MAX_LINE) + "…" : text);
  };
  return {
    line,
    setLimit(limit) {
      linesPerSecond = limit;
    },
  };
}

/**
 * Sends every console call to `emit` as one formatted line, limited as {@linkcode limitedLog}
 * does; returns the same limited sink for the runtime's own warnings about the plugin.
 */
export function captureConsole(
  inspect: (value: unknown) => string,
  emit: (level: number, line: string) => void,
): PluginLog {
  const log = limitedLog(emit);
  const line = log.line;

  const write = (level: number, args: unknown[]) => {
    let text = "";
    try {
      text = args.map((arg) => typeof arg === "string" ? arg : inspect(arg)).join(" ");
    } catch {
      text = "(a console argument could not be formatted)";
    }
    line(level, text);
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
  return log;
}
