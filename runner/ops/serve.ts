/**
 * `run` and `dev`: the runner's life from start to exit. It loads the configuration, sets up
 * logging, metrics and tracing, serves APISIX's socket, reloads on SIGHUP and when watched
 * files change, and shuts down on SIGTERM/SIGINT or when its parent (APISIX) is gone.
 *
 * @module
 */
import { fstatSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import type { LogLevel } from "@logtape/logtape";
import denoJson from "../../deno.json" with { type: "json" };
import { defaultConfig, loadConfig, type RunnerConfig } from "../config/config.ts";
import { missingEnvAdvice, missingPluginEnv } from "./env_hints.ts";
import { log, type LogFormat, setupLogging } from "../telemetry/log.ts";
import { type HealthSource, type MetricsServer, startMetricsServer } from "./metrics_http.ts";
import { RetiredTotals } from "./metrics_text.ts";
import { Reloader } from "./reload.ts";
import { parseSections, type Sections } from "../config/sections.ts";
import { parseConfExpireTime, parseListenAddress, RunnerServer } from "../apisix/server.ts";
import { setupTracing } from "../telemetry/tracing.ts";
import { affectedPlugins, pluginDirectories, type Watcher, watchPaths } from "./watch.ts";

/** What the command line decided. Unset log and metrics values fall back to the file. */
export interface ServeOptions {
  mode: "run" | "dev";
  /** The configuration file, or null for the bundled plugins with defaults. */
  configFile: string | null;
  level?: LogLevel;
  format?: LogFormat;
  logFile?: string;
  metricsPort?: number;
  /** `APISIX_LISTEN_ADDRESS` (or the dev default). */
  address: string | undefined;
}

async function readConfig(file: string | null): Promise<[RunnerConfig, Sections, string]> {
  const config = file ? await loadConfig(file) : defaultConfig();
  const sections = parseSections(config);
  const text = file ? await Deno.readTextFile(file).catch(() => "") : "";
  return [config, sections, text];
}

/** How often the parent process id is checked when stdin is not a pipe from the parent. */
const PARENT_POLL_MS = 500;
/**
 * How often it is checked as well when stdin is a pipe: a backstop for a pipe whose write end
 * outlives the parent (a child of APISIX that inherited it), rare enough to cost an idle runner
 * nothing measurable.
 */
const PARENT_BACKSTOP_MS = 5000;

/**
 * Resolves with a reason when the parent (APISIX) is gone. When stdin is a pipe (APISIX hands
 * the runner one), its end of file says so at once: the write end's holders are gone, which
 * also covers a wrapper script between APISIX and the runner, and waiting on it costs nothing
 * while the runner idles. The runner also checks whether it was re-parented (its parent
 * process id changed): every half second when stdin says nothing about a parent (a terminal,
 * /dev/null), every five seconds as a backstop when it is a pipe.
 */
function parentGone(): Promise<string> {
  return new Promise((resolve) => {
    let pipe = false;
    try {
      // fstat on the descriptor: Deno refuses to stat /proc/self/fd/0 without --allow-all.
      pipe = fstatSync(0).isFIFO();
    } catch {
      // No stdin to look at: the parent process id alone tells.
    }
    const parent = Deno.ppid;
    const timer = setInterval(() => {
      if (Deno.ppid !== parent) {
        clearInterval(timer);
        resolve(`the parent process ${parent} is gone`);
      }
    }, pipe ? PARENT_BACKSTOP_MS : PARENT_POLL_MS);
    Deno.unrefTimer(timer);
    if (!pipe) return;
    (async () => {
      const buffer = new Uint8Array(256);
      try {
        while (await Deno.stdin.read(buffer) !== null) { /* APISIX never writes; drain anyway */ }
      } catch {
        // A read error means the pipe is gone too.
      }
      clearInterval(timer);
      resolve("stdin closed: the parent process is gone");
    })();
  });
}

function warnHiddenEnv(config: RunnerConfig): void {
  for (const missing of missingPluginEnv(config)) log.runner.warn(missingEnvAdvice(missing));
}

/** Serves until told to stop; returns the exit code. */
export async function serve(options: ServeOptions): Promise<number> {
  const dev = options.mode === "dev";
  let [config, sections, configText] = await readConfig(options.configFile);
  const logSettings = (s: Sections) => ({
    level: options.level ?? s.log.level ?? (dev ? "debug" : "info"),
    format: options.format ?? s.log.format ?? "logfmt",
    file: options.logFile ?? s.log.file ?? null,
    levels: s.log.levels,
  });
  setupLogging(logSettings(sections));
  const path = parseListenAddress(options.address);
  const confExpireSeconds = parseConfExpireTime(Deno.env.get("APISIX_CONF_EXPIRE_TIME"));
  const tracing = await setupTracing();

  const server = new RunnerServer(config, {
    path,
    confExpireSeconds,
    ...sections.confCache.maxTokens ? { maxConfTokens: sections.confCache.maxTokens } : {},
    // Benchmarks only: answer without running plugins, to measure the protocol alone.
    floor: Deno.env.get("A6_BENCH_FLOOR") === "1",
  });

  // ---- shutdown ------------------------------------------------------------------------
  // The handlers go in before the socket exists: once it accepts, APISIX (or a test) may send
  // SIGTERM at any moment, and the default action would end the runner uncleanly.
  let stopping: Promise<void> | null = null;
  const cleanups: Array<() => unknown> = [];
  let exitCode = 0;
  let finished!: () => void;
  const done = new Promise<void>((resolve) => finished = resolve);
  const stop = (why: string) => {
    stopping ??= (async () => {
      log.runner.info("shutting down: {why}", { why });
      for (const cleanup of cleanups) await cleanup();
      await server.shutdown();
    })().finally(finished);
    return stopping;
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => stop(signal));
  }
  parentGone().then(stop);

  server.listen();
  log.runner.info(
    "apisix-deno-plugin-runner {version} ({mode}) serving {count} plugins (pid {pid})",
    {
      version: denoJson.version,
      mode: options.mode,
      count: config.plugins.size,
      pid: Deno.pid,
    },
  );
  if (tracing) log.runner.info("OpenTelemetry traces on (OTEL_DENO=true)");
  warnHiddenEnv(config);

  const retired = new RetiredTotals();
  const reloader = new Reloader(server.plugins, server.cache, (s) => retired.add(s));
  const source: HealthSource = {
    supervisors: () => [...server.plugins.supervisors, ...reloader.retiring],
    confTokens: () => server.cache.size,
    connections: () => server.connections.size,
    reloads: () => reloader.counts,
    draining: () => stopping !== null,
  };
  const metricsPort = options.metricsPort ?? sections.metrics?.port;
  let metrics: MetricsServer | null = null;
  if (metricsPort !== undefined) {
    metrics = await startMetricsServer({ port: metricsPort }, source, retired);
    cleanups.push(() => metrics?.close());
  }

  // ---- reloads -------------------------------------------------------------------------
  const watchers: Watcher[] = [];
  let pluginWatcher: Watcher | null = null;
  let watchedDirs = "";
  const watchPlugins = () => {
    if (!dev) return;
    const dirs = pluginDirectories(config);
    if (dirs.join("\n") === watchedDirs) return;
    pluginWatcher?.close();
    watchedDirs = dirs.join("\n");
    pluginWatcher = dirs.length
      ? watchPaths(dirs, true, (changed) => {
        const restart = affectedPlugins(config, changed);
        if (restart.size === 0) return;
        const files = changed.map((file) => relative(Deno.cwd(), file)).join(", ");
        reloadFromFile(`${files} changed`, restart, false);
      })
      : null;
    if (dirs.length) {
      log.runner.info("watching plugin sources in {dirs}", {
        dirs: dirs.map((d) => relative(Deno.cwd(), d) || ".").join(", "),
      });
    }
  };

  const reloadFromFile = async (
    reason: string,
    restart: "all" | ReadonlySet<string>,
    onlyIfChanged: boolean,
  ) => {
    if (stopping) return;
    let next: [RunnerConfig, Sections, string];
    try {
      next = await readConfig(options.configFile);
    } catch (error) {
      reloader.counts.failed++;
      log.runner.error(
        "reload ({reason}) refused: {error}; the previous configuration keeps serving",
        { reason, error: (error as Error).message },
      );
      return;
    }
    if (onlyIfChanged && next[2] === configText) return;
    const result = await reloader.reload({ config: next[0], restart, reason });
    if (!result.ok) return;
    const previous = sections;
    [config, sections, configText] = next;
    if (JSON.stringify(logSettings(previous)) !== JSON.stringify(logSettings(sections))) {
      setupLogging(logSettings(sections));
      log.runner.info("log settings changed");
    }
    if (JSON.stringify(previous.metrics) !== JSON.stringify(sections.metrics)) {
      log.runner.warn("metrics.port changes take effect when the runner restarts");
    }
    if (JSON.stringify(previous.confCache) !== JSON.stringify(sections.confCache)) {
      log.runner.warn("confCache changes take effect when the runner restarts");
    }
    warnHiddenEnv(config);
    watchPlugins();
  };

  Deno.addSignalListener("SIGHUP", () => {
    reloadFromFile("SIGHUP", "all", false);
  });
  if (options.configFile) {
    const file = resolve(options.configFile);
    watchers.push(watchPaths([dirname(file)], false, (changed) => {
      if (changed.some((p) => resolve(p) === file)) {
        reloadFromFile(`${relative(Deno.cwd(), file)} changed`, new Set(), true);
      }
    }));
  }
  watchPlugins();
  if (dev) {
    log.runner.info(
      "dev mode: plugin changes reload into new sandboxes, connections stay open; " +
        "try it with `deno task gateway` and curl (APISIX_LISTEN_ADDRESS=unix:{path})",
      { path },
    );
  }

  cleanups.unshift(() => {
    for (const watcher of watchers) watcher.close();
    pluginWatcher?.close();
    reloader.close();
  });
  server.serve().catch((error) => {
    log.runner.fatal("the listener failed: {error}", { error });
    exitCode = 1;
    stop("listener failure");
  });
  await done;
  return exitCode;
}
