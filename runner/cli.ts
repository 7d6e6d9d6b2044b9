/**
 * The command line: `run` (what APISIX starts), `dev`, `version`, and `--help` for each.
 *
 * @module
 */
import { fstatSync } from "node:fs";
import { parseArgs } from "node:util";
import denoJson from "../deno.json" with { type: "json" };
import { ConfigError, defaultConfig, loadConfig, type RunnerConfig } from "./config.ts";
import { log, LOG_LEVELS, type LogFormat, setupLogging } from "./log.ts";
import {
  EnvironmentError,
  parseConfExpireTime,
  parseListenAddress,
  RunnerServer,
} from "./server.ts";
import type { LogLevel } from "@logtape/logtape";

/** The address `dev` listens on unless APISIX_LISTEN_ADDRESS says otherwise. */
export const DEV_ADDRESS = "unix:/tmp/apisix-deno-runner.sock";

const USAGE = `apisix-deno-plugin-runner ${denoJson.version}: Apache APISIX plugins in TypeScript

Usage: runner <command> [options]

Commands:
  run       Serve APISIX's ext-plugin protocol on APISIX_LISTEN_ADDRESS (what APISIX starts)
  dev       Like run, with debug logs, listening on ${DEV_ADDRESS} by default
  version   Print the version

Run "runner <command> --help" for a command's options.`;

const RUN_USAGE = `Usage: runner run [options]

Serves APISIX's ext-plugin protocol. APISIX sets the environment:
  APISIX_LISTEN_ADDRESS    unix:/absolute/path.sock to listen on (required)
  APISIX_CONF_EXPIRE_TIME  APISIX's conf cache time in seconds (default 3600)

Options:
  -c, --config <file>      Plugin configuration (JSON); default: the bundled plugins
      --log-level <level>  trace, debug, info, warning, error, fatal (default info;
                           env A6_LOG_LEVEL)
      --log-format <fmt>   logfmt or json (default logfmt; env A6_LOG_FORMAT)
      --log-file <file>    Append logs to a file instead of stderr (env A6_LOG_FILE)
  -h, --help               Show this help`;

const RUN_OPTIONS = {
  config: { type: "string", short: "c" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  "log-file": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** Thrown for a wrong command line; the message says what to do. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

interface RunOptions {
  config: string | undefined;
  level: LogLevel;
  format: LogFormat;
  file: string | null;
}

function parseRunOptions(args: string[], defaultLevel: LogLevel): RunOptions | null {
  let values;
  try {
    ({ values } = parseArgs({ args, options: RUN_OPTIONS, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n\n${RUN_USAGE}`);
  }
  if (values.help) return null;
  const level = values["log-level"] ?? Deno.env.get("A6_LOG_LEVEL") ?? defaultLevel;
  if (!LOG_LEVELS.includes(level as LogLevel)) {
    throw new UsageError(`--log-level ${level}: expected one of ${LOG_LEVELS.join(", ")}`);
  }
  const format = values["log-format"] ?? Deno.env.get("A6_LOG_FORMAT") ?? "logfmt";
  if (format !== "logfmt" && format !== "json") {
    throw new UsageError(`--log-format ${format}: expected logfmt or json`);
  }
  return {
    config: values.config,
    level: level as LogLevel,
    format,
    file: values["log-file"] ?? Deno.env.get("A6_LOG_FILE") ?? null,
  };
}

/** Resolves when the parent (APISIX) is gone: it hands the runner a pipe as stdin. */
async function parentGone(): Promise<boolean> {
  let fifo = false;
  try {
    // fstat of the descriptor itself: Deno refuses to stat /proc/self/fd/0 without --allow-all.
    fifo = fstatSync(0).isFIFO();
  } catch {
    return false;
  }
  // A terminal or /dev/null says nothing about a parent.
  if (!fifo) return false;
  const buffer = new Uint8Array(256);
  try {
    while (await Deno.stdin.read(buffer) !== null) { /* APISIX never writes; drain anyway */ }
  } catch {
    // A read error means the pipe is gone too.
  }
  return true;
}

async function serve(options: RunOptions, address: string | undefined): Promise<number> {
  setupLogging({ level: options.level, format: options.format, file: options.file });
  const path = parseListenAddress(address);
  const confExpireSeconds = parseConfExpireTime(Deno.env.get("APISIX_CONF_EXPIRE_TIME"));
  const config: RunnerConfig = options.config ? await loadConfig(options.config) : defaultConfig();
  const server = new RunnerServer(config, { path, confExpireSeconds });
  server.listen();
  log.runner.info("apisix-deno-plugin-runner {version} serving {count} plugins (pid {pid})", {
    version: denoJson.version,
    count: config.plugins.size,
    pid: Deno.pid,
  });

  let stopping: Promise<void> | null = null;
  const stop = (why: string) => {
    stopping ??= (async () => {
      log.runner.info("shutting down: {why}", { why });
      await server.shutdown();
    })();
    return stopping;
  };
  const done = new Promise<void>((resolve) => {
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      Deno.addSignalListener(signal, () => stop(signal).then(resolve));
    }
    parentGone().then((gone) => {
      if (gone) stop("stdin closed: the parent process is gone").then(resolve);
    });
  });
  server.serve().catch((error) => {
    log.runner.fatal("the listener failed: {error}", { error });
    stop("listener failure");
  });
  await done;
  return 0;
}

/** Runs the command line `args`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case "run":
      case "dev": {
        const dev = command === "dev";
        const options = parseRunOptions(rest, dev ? "debug" : "info");
        if (!options) {
          console.log(dev ? RUN_USAGE.replace("runner run", "runner dev") : RUN_USAGE);
          return 0;
        }
        const address = Deno.env.get("APISIX_LISTEN_ADDRESS") ?? (dev ? DEV_ADDRESS : undefined);
        return await serve(options, address);
      }
      case "version":
      case "--version":
        console.log(denoJson.version);
        return 0;
      case undefined:
      case "help":
      case "--help":
      case "-h":
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
    }
  } catch (error) {
    if (
      error instanceof UsageError || error instanceof ConfigError ||
      error instanceof EnvironmentError
    ) {
      console.error(`error: ${error.message}`);
      return 2;
    }
    throw error;
  }
}
