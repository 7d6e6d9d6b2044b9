/**
 * Logging: leveled, one line per event, logfmt or JSON lines, to stderr or a file, through
 * LogTape. Categories: `a6.runner`, `a6.conn`, `a6.sandbox`, and `a6.plugin.<name>` for each
 * plugin (its console output included).
 *
 * @module
 */
import {
  configureSync,
  getJsonLinesFormatter,
  getLogfmtFormatter,
  getLogger,
  type Logger,
  type LogLevel,
  resetSync,
  type Sink,
} from "@logtape/logtape";

/** Log line formats. */
export type LogFormat = "logfmt" | "json";

/** Logging settings. */
export interface LogSettings {
  level: LogLevel;
  format: LogFormat;
  /** Append to this file instead of writing to stderr. */
  file: string | null;
  /** Levels of single categories (`"a6.plugin.say": "debug"`), overriding `level`. */
  levels?: Record<string, LogLevel>;
}

/** The levels, lowest first. */
export const LOG_LEVELS: readonly LogLevel[] = [
  "trace",
  "debug",
  "info",
  "warning",
  "error",
  "fatal",
];

const encoder = new TextEncoder();

function fileSink(file: string, format: (record: Parameters<Sink>[0]) => string): Sink {
  const handle = Deno.openSync(file, { append: true, create: true });
  return (record) => {
    handle.writeSync(encoder.encode(format(record)));
  };
}

/** Sets up logging; call again to change it (e.g. on reload). */
export function setupLogging(settings: LogSettings): void {
  const formatter = settings.format === "json"
    ? getJsonLinesFormatter()
    : getLogfmtFormatter({ categorySeparator: "." });
  const format = (record: Parameters<Sink>[0]) => String(formatter(record));
  const sink: Sink = settings.file ? fileSink(settings.file, format) : (record) => {
    try {
      Deno.stderr.writeSync(encoder.encode(format(record)));
    } catch {
      // stderr is gone (APISIX closed the pipe): nothing left to tell.
    }
  };
  const level = settings.levels?.["a6"] ?? settings.level;
  resetSync();
  configureSync({
    sinks: { main: sink },
    loggers: [
      { category: ["a6"], sinks: ["main"], lowestLevel: level },
      // A category of its own level writes to the sink itself: a parent's level never hides it.
      ...Object.entries(settings.levels ?? {}).filter(([category]) => category !== "a6").map((
        [category, lowestLevel],
      ) => ({
        category: category.split("."),
        sinks: ["main"],
        parentSinks: "override" as const,
        lowestLevel,
      })),
      { category: ["logtape", "meta"], sinks: ["main"], lowestLevel: "warning" },
    ],
  });
}

/** Loggers of the runner's own parts. */
export const log: {
  runner: Logger;
  conn: Logger;
  sandbox: Logger;
} = {
  runner: getLogger(["a6", "runner"]),
  conn: getLogger(["a6", "conn"]),
  sandbox: getLogger(["a6", "sandbox"]),
};

/** The logger of one plugin. */
export function pluginLogger(name: string): Logger {
  return getLogger(["a6", "plugin", name]);
}
