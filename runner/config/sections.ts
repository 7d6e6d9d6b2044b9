/**
 * The operational sections of the configuration file, beside `plugins` and `bundled` (which
 * `config.ts` validates): `log`, `metrics` and `confCache`. Like every configuration mistake, a
 * wrong value gets an error naming the file, the key and what was expected.
 *
 * @module
 */
import { dirname, isAbsolute, resolve } from "node:path";
import type { LogLevel } from "@logtape/logtape";
import { ConfigError, type RunnerConfig } from "./config.ts";
import { LOG_LEVELS, type LogFormat } from "../telemetry/log.ts";

/** Top-level keys a configuration file may have. */
export const TOP_LEVEL_KEYS = ["bundled", "plugins", "log", "metrics", "confCache"] as const;

/** The `log` section: defaults that command-line flags and `A6_LOG_*` variables override. */
export interface LogSection {
  level?: LogLevel;
  format?: LogFormat;
  /** Absolute path of a file to append log lines to, instead of stderr. */
  file?: string;
  /** Levels of single categories, e.g. `{"a6.plugin.say": "debug"}`. */
  levels: Record<string, LogLevel>;
}

/** The `metrics` section: where the metrics and health endpoint listens (on 127.0.0.1). */
export interface MetricsSection {
  /** TCP port on 127.0.0.1; 0 picks a free one (logged at start). */
  port: number;
}

/** The `confCache` section. */
export interface ConfCacheSection {
  /** Most conf tokens kept; the least recently used go first. */
  maxTokens?: number;
}

/** Every operational section after validation. */
export interface Sections {
  log: LogSection;
  metrics: MetricsSection | null;
  confCache: ConfCacheSection;
}

type Json = Record<string, unknown>;

class SectionChecker {
  constructor(readonly file: string) {}

  fail(key: string, expected: string, got?: unknown): never {
    const shown = got === undefined ? "" : `, got ${JSON.stringify(got)}`;
    throw new ConfigError(`${this.file}: ${key}: expected ${expected}${shown}`);
  }

  object(value: unknown, key: string, allowed: readonly string[]): Json {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      this.fail(key, "an object", value);
    }
    for (const name of Object.keys(value)) {
      if (!allowed.includes(name)) {
        this.fail(`${key}.${name}`, `one of the keys ${allowed.join(", ")}`);
      }
    }
    return value as Json;
  }

  level(value: unknown, key: string): LogLevel {
    if (typeof value !== "string" || !LOG_LEVELS.includes(value as LogLevel)) {
      this.fail(key, `one of ${LOG_LEVELS.join(", ")}`, value);
    }
    return value as LogLevel;
  }

  integer(value: unknown, key: string, min: number, max: number): number {
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      this.fail(key, `an integer from ${min} to ${max}`, value);
    }
    return value;
  }
}

/** Validates the top-level keys and the operational sections of `config`. */
export function parseSections(config: RunnerConfig): Sections {
  const file = config.file ?? "(built-in defaults)";
  const check: SectionChecker = new SectionChecker(file);
  for (const key of Object.keys(config.sections)) {
    if (!(TOP_LEVEL_KEYS as readonly string[]).includes(key)) {
      check.fail(key, `one of the top-level keys ${TOP_LEVEL_KEYS.join(", ")}`);
    }
  }
  const baseDir = config.file ? dirname(resolve(config.file)) : Deno.cwd();
  const sections: Sections = { log: { levels: {} }, metrics: null, confCache: {} };

  const log = config.sections.log;
  if (log !== undefined) {
    const raw = check.object(log, "log", ["level", "format", "file", "levels"]);
    if (raw.level !== undefined) sections.log.level = check.level(raw.level, "log.level");
    if (raw.format !== undefined) {
      if (raw.format !== "logfmt" && raw.format !== "json") {
        check.fail("log.format", '"logfmt" or "json"', raw.format);
      }
      sections.log.format = raw.format;
    }
    if (raw.file !== undefined) {
      if (typeof raw.file !== "string" || raw.file === "") {
        check.fail("log.file", "a file path (relative to the configuration file)", raw.file);
      }
      sections.log.file = isAbsolute(raw.file) ? raw.file : resolve(baseDir, raw.file);
    }
    if (raw.levels !== undefined) {
      if (typeof raw.levels !== "object" || raw.levels === null || Array.isArray(raw.levels)) {
        check.fail("log.levels", 'an object of category → level, e.g. {"a6.plugin.say": "debug"}');
      }
      for (const [category, level] of Object.entries(raw.levels)) {
        if (!/^a6(\.[A-Za-z0-9_-][A-Za-z0-9._-]*)?$/.test(category)) {
          check.fail(
            `log.levels.${category}`,
            'a category as it appears in log lines: "a6", "a6.runner", "a6.conn", ' +
              '"a6.sandbox" or "a6.plugin.<name>"',
          );
        }
        sections.log.levels[category] = check.level(level, `log.levels.${category}`);
      }
    }
  }

  const metrics = config.sections.metrics;
  if (metrics !== undefined) {
    const raw = check.object(metrics, "metrics", ["port"]);
    if (raw.port === undefined) {
      check.fail("metrics.port", "a TCP port for the endpoint on 127.0.0.1 (0: any free port)");
    }
    sections.metrics = { port: check.integer(raw.port, "metrics.port", 0, 65535) };
  }

  const confCache = config.sections.confCache;
  if (confCache !== undefined) {
    const raw = check.object(confCache, "confCache", ["maxTokens"]);
    if (raw.maxTokens !== undefined) {
      sections.confCache.maxTokens = check.integer(
        raw.maxTokens,
        "confCache.maxTokens",
        1,
        10_000_000,
      );
    }
  }
  return sections;
}
