/**
 * The runner's configuration file: which plugins exist, what each may do, and how it is
 * isolated and limited. Validation errors name the file, the key and what was expected.
 *
 * @module
 */
import { dirname, isAbsolute, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseJsonc } from "./jsonc.ts";
import { npmPluginDirectory, packageDirectoryOf, parseNpmSpec } from "./packages.ts";

/** Permission kinds a plugin can be granted, each as an allowlist. */
export const PERMISSION_KINDS = ["read", "write", "net", "env", "sys", "import"] as const;

/** The names Deno accepts in a `sys` allowlist. */
export const SYS_NAMES: readonly string[] = [
  "hostname",
  "osRelease",
  "osUptime",
  "loadavg",
  "networkInterfaces",
  "systemMemoryInfo",
  "uid",
  "gid",
  "username",
  "cpus",
  "homedir",
  "statfs",
  "getPriority",
  "setPriority",
];

/** One permission kind. */
export type PermissionKind = typeof PERMISSION_KINDS[number];

/** Allowlists per permission kind; an empty list grants nothing. */
export type Permissions = Record<PermissionKind, string[]>;

/** How a plugin is isolated. */
export type Isolation = "process" | "shared" | "inline";

/** What APISIX gets when a plugin fails: an error frame (closed) or "no change" (open). */
export type FailurePolicy = "closed" | "open";

/** Everything the runner needs to know about one plugin. */
export interface PluginSettings {
  /** The name routes use. */
  name: string;
  /** The module URL (file: for bundled and local plugins). */
  module: string;
  /** Whether the module is one of the bundled plugins. */
  bundled: boolean;
  /**
   * The plugin package's directory (its own deno.json, lock and installed dependencies), or
   * null for a bundled plugin or a single file resolved with the runner's own imports.
   */
  package?: string | null;
  /** The runner configuration file that named the plugin (for messages that say what to run). */
  configFile?: string | null;
  /** What the plugin may do. */
  permissions: Permissions;
  /** Own process, a shared process, or a worker inside the runner. */
  isolation: Isolation;
  /** The sandbox this plugin lives in: plugins with the same key share one. */
  sandbox: string;
  /** Deadline of one call, in milliseconds. */
  timeoutMs: number;
  /** Memory limit of the sandbox, in MiB (V8 heap limit and resident-memory watchdog). */
  memoryMb: number;
  /** Calls in flight at once; more wait in the runner. */
  concurrency: number;
  /** What APISIX gets when the plugin fails. */
  failure: FailurePolicy;
  /** Console lines per second before lines are dropped. */
  logLinesPerSecond: number;
  /** Console bytes per second before lines are dropped (counted by the runner). */
  logBytesPerSecond: number;
  /** ExtraInfo questions (`req.var()`, bodies) one call may ask APISIX; more fail the call. */
  maxQuestionsPerCall: number;
}

/** Defaults: no permissions, an own process, a deadline well under APISIX's 60 s. */
export const PLUGIN_DEFAULTS = {
  isolation: "process" as Isolation,
  timeoutMs: 10_000,
  memoryMb: 256,
  concurrency: 1024,
  failure: "closed" as FailurePolicy,
  logLinesPerSecond: 100,
  // 32 full 8 KiB lines a second, or the 100 lines at 2.5 KiB each: stack traces fit, a flood
  // does not.
  logBytesPerSecond: 256 * 1024,
  // A plugin reads a handful of variables; 256 questions are about 25 ms of the gateway's time
  // at 100 µs a round trip, yet leave room for one that reads a variable per cookie or arg.
  maxQuestionsPerCall: 256,
};

/** The bundled plugins: name → module file under `plugins/`. */
export const BUNDLED_PLUGINS: Readonly<Record<string, string>> = {
  "say": "say.ts",
  "request-rewrite": "request_rewrite.ts",
  "request-body-rewrite": "request_body_rewrite.ts",
  "content-digest": "content_digest.ts",
  "response-rewrite": "response_rewrite.ts",
  "limit-req": "limit_req.ts",
  "fault-injection": "fault_injection.ts",
};

const BUNDLED_DIR = new URL("../../plugins/", import.meta.url);

/** Thrown for a configuration mistake; the message names the file and the key. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** The runner's configuration after validation. */
export interface RunnerConfig {
  /** The file it came from, or null for the defaults. */
  file: string | null;
  /** Plugins by name. */
  plugins: Map<string, PluginSettings>;
  /** Raw sections other parts of the runner validate themselves (log, metrics, ...). */
  sections: Record<string, unknown>;
}

type Json = Record<string, unknown>;

class Checker {
  constructor(readonly file: string) {}

  fail(key: string, expected: string, got?: unknown): never {
    const shown = got === undefined ? "" : `, got ${JSON.stringify(got)}`;
    throw new ConfigError(`${this.file}: ${key}: expected ${expected}${shown}`);
  }

  object(value: unknown, key: string): Json {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      this.fail(key, "an object", value);
    }
    return value as Json;
  }

  only(value: Json, key: string, allowed: readonly string[]): void {
    for (const name of Object.keys(value)) {
      if (!allowed.includes(name)) {
        this.fail(`${key ? key + "." : ""}${name}`, `one of the keys ${allowed.join(", ")}`);
      }
    }
  }

  integer(value: unknown, key: string, min: number, max: number): number {
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      this.fail(key, `an integer from ${min} to ${max}`, value);
    }
    return value;
  }

  oneOf<T extends string>(value: unknown, key: string, options: readonly T[]): T {
    if (typeof value !== "string" || !options.includes(value as T)) {
      this.fail(key, `one of ${options.map((o) => JSON.stringify(o)).join(", ")}`, value);
    }
    return value as T;
  }

  strings(value: unknown, key: string): string[] {
    // A comma would split the entry in the sandbox's --allow-* flag and grant something else.
    if (
      !Array.isArray(value) ||
      value.some((v) => typeof v !== "string" || v === "" || v.includes(","))
    ) {
      this.fail(key, "a list of non-empty strings without commas (an allowlist)", value);
    }
    return value as string[];
  }
}

function emptyPermissions(): Permissions {
  return { read: [], write: [], net: [], env: [], sys: [], import: [] };
}

/** Settings for a bundled plugin with every default. */
export function bundledSettings(name: string): PluginSettings {
  const file = BUNDLED_PLUGINS[name];
  if (!file) throw new ConfigError(`no bundled plugin is named ${JSON.stringify(name)}`);
  return {
    name,
    module: new URL(file, BUNDLED_DIR).href,
    bundled: true,
    package: null,
    permissions: emptyPermissions(),
    isolation: PLUGIN_DEFAULTS.isolation,
    sandbox: `plugin:${name}`,
    timeoutMs: PLUGIN_DEFAULTS.timeoutMs,
    memoryMb: PLUGIN_DEFAULTS.memoryMb,
    concurrency: PLUGIN_DEFAULTS.concurrency,
    failure: PLUGIN_DEFAULTS.failure,
    logLinesPerSecond: PLUGIN_DEFAULTS.logLinesPerSecond,
    logBytesPerSecond: PLUGIN_DEFAULTS.logBytesPerSecond,
    maxQuestionsPerCall: PLUGIN_DEFAULTS.maxQuestionsPerCall,
  };
}

/** The configuration without a file: every bundled plugin with safe defaults. */
export function defaultConfig(): RunnerConfig {
  const plugins = new Map<string, PluginSettings>();
  for (const name of Object.keys(BUNDLED_PLUGINS)) plugins.set(name, bundledSettings(name));
  return { file: null, plugins, sections: {} };
}

const PLUGIN_KEYS = [
  "module",
  "permissions",
  "isolation",
  "group",
  "timeoutMs",
  "memoryMb",
  "concurrency",
  "failure",
  "logLinesPerSecond",
  "logBytesPerSecond",
  "maxQuestionsPerCall",
] as const;

/** Where a plugin's module comes from: its URL, whether it is bundled, and its package. */
interface ResolvedModule {
  module: string;
  bundled: boolean;
  package: string | null;
}

function resolveModule(
  check: Checker,
  key: string,
  name: string,
  spec: string,
  baseDir: string,
): ResolvedModule {
  if (spec in BUNDLED_PLUGINS) {
    const module = new URL(BUNDLED_PLUGINS[spec]!, BUNDLED_DIR).href;
    return { module, bundled: true, package: null };
  }
  if (spec.startsWith("npm:")) {
    if (!parseNpmSpec(spec)) {
      check.fail(key, 'an npm plugin as "npm:<name>@<exact version>"', spec);
    }
    return { module: spec, bundled: false, package: npmPluginDirectory(baseDir, name) };
  }
  let module: string;
  if (/^[a-z][a-z0-9+.-]*:/i.test(spec)) {
    if (!spec.startsWith("file:")) {
      check.fail(
        key,
        'a bundled plugin name, a file path, a file: URL or "npm:<name>@<version>" (remote ' +
          "modules are not loaded: the sandbox runs with --cached-only)",
        spec,
      );
    }
    module = spec;
  } else {
    module = pathToFileURL(isAbsolute(spec) ? spec : resolve(baseDir, spec)).href;
  }
  return { module, bundled: false, package: packageDirectoryOf(fileURLToPath(module)) };
}

/**
 * Validates a parsed configuration object. `file` names it in error messages; `standalone` says
 * whether this is a compiled binary (which cannot load plugin packages), this process by default.
 */
export function parseConfig(
  value: unknown,
  file: string,
  standalone: boolean = Deno.build.standalone,
): RunnerConfig {
  const check = new Checker(file);
  const root = check.object(value, "(top level)");
  const baseDir = dirname(resolve(file));
  const plugins = new Map<string, PluginSettings>();
  const sections: Record<string, unknown> = {};
  for (const [key, section] of Object.entries(root)) {
    if (key !== "plugins") sections[key] = section;
  }
  const declared = root.plugins === undefined ? {} : check.object(root.plugins, "plugins");
  const bundledOnly = root.bundled === undefined ? true : root.bundled;
  if (typeof bundledOnly !== "boolean") check.fail("bundled", "true or false", bundledOnly);
  delete sections.bundled;
  if (bundledOnly) {
    for (const name of Object.keys(BUNDLED_PLUGINS)) plugins.set(name, bundledSettings(name));
  }
  for (const [name, raw] of Object.entries(declared)) {
    const key = `plugins.${name}`;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name)) {
      check.fail(key, "a plugin name of 1-128 letters, digits, '.', '_' or '-'");
    }
    const entry = check.object(raw, key);
    check.only(entry, key, PLUGIN_KEYS);
    const spec: unknown = entry.module === undefined ? name : entry.module;
    if (typeof spec !== "string" || spec === "") {
      return check.fail(`${key}.module`, "a bundled plugin name, a path or a file: URL", spec);
    }
    if (entry.module === undefined && !(name in BUNDLED_PLUGINS)) {
      check.fail(`${key}.module`, "a module path (there is no bundled plugin of this name)");
    }
    const { module, bundled, package: pkg } = resolveModule(
      check,
      `${key}.module`,
      name,
      spec,
      baseDir,
    );
    if (pkg !== null && standalone) {
      check.fail(
        `${key}.module`,
        "a bundled plugin or a single-file plugin: a compiled runner binary cannot load a " +
          "plugin package (its dependencies) from disk; run the runner with `deno task start` " +
          "for packages (see docs/packages.md)",
        spec,
      );
    }

    const permissions = emptyPermissions();
    if (entry.permissions !== undefined) {
      const perms = check.object(entry.permissions, `${key}.permissions`);
      for (const kind of Object.keys(perms)) {
        if (kind === "run" || kind === "ffi") {
          check.fail(
            `${key}.permissions.${kind}`,
            `no "${kind}": sandboxed plugins may not ` +
              "start processes or load native code",
          );
        }
      }
      check.only(perms, `${key}.permissions`, PERMISSION_KINDS);
      for (const kind of PERMISSION_KINDS) {
        if (perms[kind] !== undefined) {
          permissions[kind] = check.strings(perms[kind], `${key}.permissions.${kind}`);
        }
      }
      const unknownSys = permissions.sys.find((name) => !SYS_NAMES.includes(name));
      if (unknownSys !== undefined) {
        check.fail(`${key}.permissions.sys`, `names from ${SYS_NAMES.join(", ")}`, unknownSys);
      }
      for (const kind of ["read", "write"] as const) {
        permissions[kind] = permissions[kind].map((p) => isAbsolute(p) ? p : resolve(baseDir, p));
      }
    }

    if (pkg !== null) {
      // Deno hard-links npm files from its cache into the package's node_modules: a write
      // grant over the package would let the plugin change that cache for everyone.
      const inside = permissions.write.find((p) =>
        p === pkg || p.startsWith(pkg + "/") || pkg.startsWith(p.replace(/\/$/, "") + "/")
      );
      if (inside !== undefined) {
        check.fail(
          `${key}.permissions.write`,
          "no write access to the plugin's own package (its installed dependencies are " +
            "hard links into Deno's cache)",
          inside,
        );
      }
    }

    const isolation = entry.isolation === undefined
      ? PLUGIN_DEFAULTS.isolation
      : check.oneOf(entry.isolation, `${key}.isolation`, ["process", "shared", "inline"] as const);
    let sandbox = `plugin:${name}`;
    if (isolation === "shared") {
      if (typeof entry.group !== "string" || !/^[A-Za-z0-9._-]{1,64}$/.test(entry.group)) {
        check.fail(
          `${key}.group`,
          'a group name (letters, digits, ".", "_", "-") for "shared"',
          entry.group,
        );
      }
      sandbox = `group:${entry.group}`;
    } else if (entry.group !== undefined) {
      check.fail(`${key}.group`, 'no group unless isolation is "shared"', entry.group);
    } else if (isolation === "inline") {
      sandbox = `inline:${name}`;
    }
    // An inline plugin runs on the runner's own event loop, with every permission the runner
    // has: grants would be a promise nothing keeps, so they are refused rather than ignored.
    const granted = PERMISSION_KINDS.find((kind) => permissions[kind].length > 0);
    if (isolation === "inline" && granted !== undefined) {
      check.fail(
        `${key}.permissions`,
        "no grants for an inline plugin (it runs in the runner with all of the runner's " +
          'permissions, so grants would not be enforced): remove them, or use "process"',
        permissions[granted],
      );
    }
    if (pkg !== null && isolation === "inline") {
      check.fail(
        `${key}.isolation`,
        '"process" or "shared" for a plugin package: an inline plugin runs in the runner ' +
          "itself, which resolves imports with the runner's own deno.json",
        isolation,
      );
    }
    if (isolation === "shared") {
      // A sandbox process resolves imports with one configuration: one package's.
      const other = [...plugins.values()].find((p) =>
        p.sandbox === sandbox && (p.package ?? null) !== pkg
      );
      if (other) {
        check.fail(
          `${key}.group`,
          `a group whose plugins all come from one package (or none): ${other.name} in the ` +
            `same group comes from ${other.package ?? "no package"}, this plugin from ` +
            `${pkg ?? "no package"}, and a sandbox resolves imports with one package's ` +
            "configuration",
          entry.group,
        );
      }
    }

    plugins.set(name, {
      name,
      module,
      bundled,
      package: pkg,
      configFile: file,
      permissions,
      isolation,
      sandbox,
      timeoutMs: entry.timeoutMs === undefined
        ? PLUGIN_DEFAULTS.timeoutMs
        : check.integer(entry.timeoutMs, `${key}.timeoutMs`, 1, 55_000),
      memoryMb: entry.memoryMb === undefined
        ? PLUGIN_DEFAULTS.memoryMb
        : check.integer(entry.memoryMb, `${key}.memoryMb`, 32, 65_536),
      concurrency: entry.concurrency === undefined
        ? PLUGIN_DEFAULTS.concurrency
        : check.integer(entry.concurrency, `${key}.concurrency`, 1, 1_000_000),
      failure: entry.failure === undefined
        ? PLUGIN_DEFAULTS.failure
        : check.oneOf(entry.failure, `${key}.failure`, ["closed", "open"] as const),
      logLinesPerSecond: entry.logLinesPerSecond === undefined
        ? PLUGIN_DEFAULTS.logLinesPerSecond
        : check.integer(entry.logLinesPerSecond, `${key}.logLinesPerSecond`, 0, 100_000),
      logBytesPerSecond: entry.logBytesPerSecond === undefined
        ? PLUGIN_DEFAULTS.logBytesPerSecond
        : check.integer(entry.logBytesPerSecond, `${key}.logBytesPerSecond`, 0, 64 * 1024 * 1024),
      maxQuestionsPerCall: entry.maxQuestionsPerCall === undefined
        ? PLUGIN_DEFAULTS.maxQuestionsPerCall
        : check.integer(entry.maxQuestionsPerCall, `${key}.maxQuestionsPerCall`, 0, 65_536),
    });
  }
  return { file, plugins, sections };
}

/** Reads and validates a configuration file (JSON; comments and trailing commas allowed). */
export async function loadConfig(file: string): Promise<RunnerConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    throw new ConfigError(`${file}: cannot read the configuration: ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = parseJsonc(text);
  } catch (error) {
    throw new ConfigError(
      `${file}: not valid JSON (comments and trailing commas are allowed): ${
        (error as Error).message
      }`,
    );
  }
  return parseConfig(value, file);
}

/** The directory holding a file: URL module, which its worker may read (its own files). */
export function moduleDirectory(module: string): string | null {
  return module.startsWith("file:") ? dirname(fileURLToPath(module)) : null;
}

/**
 * What a plugin's worker may read as its own: its package directory (its files and its
 * installed dependencies), else the directory holding its module file, else nothing.
 */
export function ownDirectory(settings: PluginSettings): string | null {
  return settings.package ?? moduleDirectory(settings.module);
}
