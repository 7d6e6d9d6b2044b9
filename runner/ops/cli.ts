/**
 * The command line: `run` (what APISIX starts), `dev`, `check`, `version`, and `--help` for
 * each. Options are parsed strictly: a mistyped flag is an error, never ignored.
 *
 * Exit codes: 0 success; 1 `check` found problems (or the listener failed); 2 a usage,
 * configuration or environment error.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { LogLevel } from "@logtape/logtape";
import denoJson from "../../deno.json" with { type: "json" };
import { check, SampleConfError } from "./check.ts";
import { ConfigError, loadConfig } from "../config/config.ts";
import { LOG_LEVELS, type LogFormat, setupLogging } from "../telemetry/log.ts";
import { serve } from "./serve.ts";
import { EnvironmentError } from "../apisix/server.ts";

/** The address `dev` listens on unless APISIX_LISTEN_ADDRESS says otherwise. */
export const DEV_ADDRESS = "unix:/tmp/apisix-deno-runner.sock";

const USAGE = `apisix-deno-plugin-runner ${denoJson.version}: Apache APISIX plugins in TypeScript

Usage: runner <command> [options]

Commands:
  run       Serve APISIX's ext-plugin protocol on APISIX_LISTEN_ADDRESS (what APISIX starts)
  dev       Like run, with debug logs and plugin files watched, on ${DEV_ADDRESS}
  check     Validate the configuration, load every plugin, try sample confs
  install   Install the plugin packages' dependencies, pinned by their locks
  version   Print the version

Run "runner <command> --help" for a command's options.`;

const LOG_HELP =
  `      --log-level <level>  trace, debug, info, warning, error, fatal (env A6_LOG_LEVEL;
                           default: the config file's log.level, else LEVEL)
      --log-format <fmt>   logfmt or json (env A6_LOG_FORMAT; default logfmt)
      --log-file <file>    Append logs to a file instead of stderr (env A6_LOG_FILE)`;

const RUN_USAGE = `Usage: runner run [options]

Serves APISIX's ext-plugin protocol. APISIX sets the environment:
  APISIX_LISTEN_ADDRESS    unix:/absolute/path.sock to listen on (required)
  APISIX_CONF_EXPIRE_TIME  APISIX's conf cache time in seconds (default 3600)

Reloads plugins and configuration on SIGHUP, and the configuration when its file changes;
connections stay open and calls in flight finish on the previous versions.

Options:
  -c, --config <file>      Configuration (JSON with comments; env A6_CONFIG);
                           default: the bundled plugins with safe defaults
${LOG_HELP.replace("LEVEL", "info")}
      --metrics-port <n>   Serve /metrics and /health on 127.0.0.1:<n> (0: any free port;
                           env A6_METRICS_PORT; default: the config file's metrics.port)
  -h, --help               Show this help`;

const DEV_USAGE = `Usage: runner dev [options]

Like "run", for writing plugins: listens on APISIX_LISTEN_ADDRESS, else ${DEV_ADDRESS};
logs at debug level; watches the plugins' source directories and reloads a changed plugin into
a new sandbox while connections stay open (calls in flight finish on the old version).

Options:
  -c, --config <file>      Configuration (JSON with comments; env A6_CONFIG);
                           default: the bundled plugins with safe defaults
${LOG_HELP.replace("LEVEL", "debug")}
      --metrics-port <n>   Serve /metrics and /health on 127.0.0.1:<n> (env A6_METRICS_PORT)
  -h, --help               Show this help`;

const CHECK_USAGE = `Usage: runner check [options]

Validates the configuration, loads every plugin in its sandbox, and runs parseConf on the
sample confs given. Prints one line per finding; exits 1 if anything is wrong.

Options:
  -c, --config <file>      Configuration to check (env A6_CONFIG); default: the bundled plugins
      --conf <plugin>=<conf>
                           A sample conf, as a route's ext-plugin conf would carry it
                           (e.g. --conf 'say={"body":"hi"}'), or <plugin>=@<file>; repeatable
      --plugin <name>      Load only this plugin (repeatable); default: every plugin
      --log-level <level>  Runner log lines shown beside the report (default error)
  -h, --help               Show this help`;

const INSTALL_USAGE = `Usage: runner install --config <file> [--frozen]

Installs the dependencies of every plugin package the configuration names (a module in a
directory with its own deno.json, or "npm:<name>@<version>"), pinned by the package's own
deno.lock (created when missing), into the package's .apisix-runner directory. Sandboxes then
start with --cached-only: nothing is fetched while the runner serves. Installing twice changes
nothing. See docs/packages.md.

Options:
  -c, --config <file>      The runner configuration (env A6_CONFIG); required
      --frozen             Fail when a package's lock is missing or out of date (for CI)
  -h, --help               Show this help`;

const VERSION_USAGE = `Usage: runner version

Prints the runner's version.`;

const COMMON = {
  config: { type: "string", short: "c" },
  "log-level": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

const SERVE_OPTIONS = {
  ...COMMON,
  "log-format": { type: "string" },
  "log-file": { type: "string" },
  "metrics-port": { type: "string" },
} as const;

const CHECK_OPTIONS = {
  ...COMMON,
  conf: { type: "string", multiple: true },
  plugin: { type: "string", multiple: true },
} as const;

/** Thrown for a wrong command line; the message says what to do. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Runs a parseArgs call, turning its errors into usage errors for `command`. */
function parse<T>(command: string, run: () => T): T {
  try {
    return run();
  } catch (error) {
    throw new UsageError(
      `runner ${command}: ${(error as Error).message}\nRun "runner ${command} --help" for usage.`,
    );
  }
}

function level(value: string | undefined, source: string): LogLevel | undefined {
  if (value === undefined) return undefined;
  if (!LOG_LEVELS.includes(value as LogLevel)) {
    throw new UsageError(`${source} ${value}: expected one of ${LOG_LEVELS.join(", ")}`);
  }
  return value as LogLevel;
}

function format(value: string | undefined, source: string): LogFormat | undefined {
  if (value === undefined) return undefined;
  if (value !== "logfmt" && value !== "json") {
    throw new UsageError(`${source} ${value}: expected logfmt or json`);
  }
  return value;
}

function port(value: string | undefined, source: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) {
    throw new UsageError(`${source} ${value}: expected a TCP port from 0 to 65535`);
  }
  return n;
}

/** A flag, else its environment variable; empty variables count as unset. */
function flagOrEnv(flag: string | undefined, env: string): [string | undefined, string] {
  if (flag !== undefined) return [flag, `--${env.slice(3).toLowerCase().replace(/_/g, "-")}`];
  const value = Deno.env.get(env);
  return [value === "" ? undefined : value, env];
}

async function runOrDev(command: "run" | "dev", args: string[]): Promise<number> {
  const { values } = parse(
    command,
    () => parseArgs({ args, options: SERVE_OPTIONS, strict: true, allowPositionals: false }),
  );
  if (values.help) {
    console.log(command === "dev" ? DEV_USAGE : RUN_USAGE);
    return 0;
  }
  const configFile = values.config ?? (Deno.env.get("A6_CONFIG") || null);
  const options = {
    mode: command,
    configFile,
    level: level(...flagOrEnv(values["log-level"], "A6_LOG_LEVEL")),
    format: format(...flagOrEnv(values["log-format"], "A6_LOG_FORMAT")),
    logFile: flagOrEnv(values["log-file"], "A6_LOG_FILE")[0],
    metricsPort: port(...flagOrEnv(values["metrics-port"], "A6_METRICS_PORT")),
    address: Deno.env.get("APISIX_LISTEN_ADDRESS") ??
      (command === "dev" ? DEV_ADDRESS : undefined),
  };
  // Drop unset values: the configuration file supplies them.
  const clean = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  return await serve(clean as unknown as Parameters<typeof serve>[0]);
}

async function runCheck(args: string[]): Promise<number> {
  const { values } = parse(
    "check",
    () => parseArgs({ args, options: CHECK_OPTIONS, strict: true, allowPositionals: false }),
  );
  if (values.help) {
    console.log(CHECK_USAGE);
    return 0;
  }
  setupLogging({
    level: level(values["log-level"], "--log-level") ?? "error",
    format: "logfmt",
    file: null,
  });
  try {
    return await check({
      configFile: values.config ?? (Deno.env.get("A6_CONFIG") || null),
      confs: values.conf ?? [],
      plugins: values.plugin ?? [],
    });
  } catch (error) {
    if (error instanceof SampleConfError) throw new UsageError(error.message);
    throw error;
  }
}

async function runInstall(args: string[]): Promise<number> {
  const { values } = parse("install", () =>
    parseArgs({
      args,
      options: {
        config: { type: "string", short: "c" },
        frozen: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  if (values.help) {
    console.log(INSTALL_USAGE);
    return 0;
  }
  const file = values.config ?? (Deno.env.get("A6_CONFIG") || null);
  if (!file) {
    throw new UsageError(
      'runner install: --config <file> is required\nRun "runner install --help" for usage.',
    );
  }
  const { installPackages } = await import("./install.ts");
  return await installPackages(await loadConfig(file), {
    frozen: values.frozen ?? false,
    print: (line) => console.log(line),
  });
}

/** Runs the command line `args`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case "run":
      case "dev":
        return await runOrDev(command, rest);
      case "check":
        return await runCheck(rest);
      case "install":
        return await runInstall(rest);
      case "version":
      case "--version": {
        const { values } = parse("version", () =>
          parseArgs({
            args: rest,
            options: { help: { type: "boolean", short: "h" } },
            strict: true,
            allowPositionals: false,
          }));
        console.log(values.help ? VERSION_USAGE : denoJson.version);
        return 0;
      }
      case undefined:
      case "help":
      case "--help":
      case "-h":
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(
          `unknown command ${JSON.stringify(command)}\nRun "runner --help" for the commands.`,
        );
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
