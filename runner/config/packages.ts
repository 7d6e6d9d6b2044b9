/**
 * Plugin packages: a directory with its own `deno.json` (its `imports` name its dependencies),
 * its own `deno.lock`, and the plugin module; or an `npm:<name>@<version>` plugin, kept as a
 * package the runner writes beside its configuration file.
 *
 * `install` (see install.ts) writes, inside each package, a runner-owned directory
 * {@linkcode GENERATED_DIR} holding the configuration its sandbox runs with: an import map that
 * merges the package's `imports` with the runner's own npm imports (scoped to the runner's
 * files, so a package may pin another version of a library the runner uses) and maps
 * `@apisix/deno-plugin-runner[/testing]` to the runner's own files; its lock; its node_modules;
 * and a stamp of what it was installed from. See docs/packages.md for why.
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseJsonc } from "./jsonc.ts";

/** The runner's own directory (where its deno.json, main.ts and mod.ts are). */
export const RUNNER_ROOT: string = fileURLToPath(new URL("../../", import.meta.url)).replace(
  /\/$/,
  "",
);

/** The runner-owned directory inside a package that `install` writes. */
export const GENERATED_DIR = ".apisix-runner";

/** The file in {@linkcode GENERATED_DIR} that records what the install was made from. */
const STAMP_FILE = "installed.json";

/** The version of what `install` writes: a runner that writes it differently reinstalls. */
const GENERATED_FORMAT = 1;

/** Where `npm:` plugins' packages live, beside the runner configuration file. */
export const NPM_PLUGINS_DIR = "npm_plugins";

/** The import names that always mean the runner's own API, in every package. */
export const API_IMPORTS: Readonly<Record<string, string>> = {
  "@apisix/deno-plugin-runner": pathToFileURL(join(RUNNER_ROOT, "mod.ts")).href,
  "@apisix/deno-plugin-runner/testing": pathToFileURL(join(RUNNER_ROOT, "testing", "mod.ts")).href,
};

/** The configuration file names Deno reads in a directory, in its order of preference. */
const CONFIG_NAMES = ["deno.json", "deno.jsonc"];

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * The package a plugin module file belongs to: the directory holding it when that directory
 * has its own deno.json (not the runner's own), else null (a single-file plugin, resolved with
 * the runner's imports as before packages existed).
 */
export function packageDirectoryOf(modulePath: string): string | null {
  const dir = dirname(resolve(modulePath));
  if (dir === RUNNER_ROOT) return null;
  return CONFIG_NAMES.some((name) => isFile(join(dir, name))) ? dir : null;
}

/** An `npm:<name>@<exact version>` plugin specifier, split; null when it is not one. */
export function parseNpmSpec(spec: string): { name: string; version: string } | null {
  const match = spec.match(
    /^npm:((?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*)@(\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]+)?)$/,
  );
  return match ? { name: match[1]!, version: match[2]! } : null;
}

/** The package directory `install` keeps for the `npm:` plugin named `plugin`. */
export function npmPluginDirectory(configDir: string, plugin: string): string {
  return join(configDir, NPM_PLUGINS_DIR, plugin);
}

/** The path of a package's own configuration file, or null when it has none. */
export function packageConfigFile(pkg: string): string | null {
  return CONFIG_NAMES.map((name) => join(pkg, name)).find(isFile) ?? null;
}

/** The configuration a package's sandbox runs with (written by `install`). */
export function generatedConfigFile(pkg: string): string {
  return join(pkg, GENERATED_DIR, "deno.json");
}

/** Thrown when a package's files are not what the runner can install. */
export class PackageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PackageError";
  }
}

/**
 * A package's dependencies as its deno.json `imports` name them, without the runner's API
 * (which always resolves to the runner's own files).
 */
export async function packageImports(pkg: string): Promise<Record<string, string>> {
  const file = packageConfigFile(pkg);
  if (!file) throw new PackageError(`${pkg}: no deno.json`);
  let value: unknown;
  try {
    value = parseJsonc(await Deno.readTextFile(file));
  } catch (error) {
    throw new PackageError(`${file}: ${(error as Error).message}`);
  }
  const imports = (value as { imports?: unknown } | null)?.imports ?? {};
  if (typeof imports !== "object" || imports === null || Array.isArray(imports)) {
    throw new PackageError(`${file}: imports: expected an object of import names to specifiers`);
  }
  const own: Record<string, string> = {};
  for (const [name, target] of Object.entries(imports)) {
    if (typeof target !== "string") {
      throw new PackageError(`${file}: imports.${name}: expected a specifier string`);
    }
    if (name in API_IMPORTS) continue;
    // Relative targets are relative to the package's deno.json; the configurations install
    // writes live in GENERATED_DIR, so they get absolute file: URLs.
    own[name] = /^\.\.?\//.test(target)
      ? pathToFileURL(resolve(pkg, target)).href + (target.endsWith("/") ? "/" : "")
      : target;
  }
  return own;
}

interface RunnerDenoJson {
  imports: Record<string, string>;
  unstable?: string[];
}

async function runnerDenoJson(): Promise<RunnerDenoJson> {
  return JSON.parse(await Deno.readTextFile(join(RUNNER_ROOT, "deno.json")));
}

/**
 * The configuration a package's sandbox runs with: the package's imports (and the runner's
 * API) for the package's modules, the runner's own imports for the runner's modules (a scope:
 * the package may name another version of `flatbuffers` without the runner loading it), and
 * a node_modules directory inside the package's {@linkcode GENERATED_DIR}.
 */
export async function generatedConfig(
  pkg: string,
  imports: Record<string, string>,
): Promise<Record<string, unknown>> {
  const runner = await runnerDenoJson();
  const runnerScope: Record<string, string> = { ...API_IMPORTS };
  for (const [name, target] of Object.entries(runner.imports)) {
    if (!target.startsWith("./")) runnerScope[name] = target;
  }
  return {
    "//": "Written by the runner's `install`: do not edit (it is rewritten).",
    unstable: runner.unstable ?? [],
    nodeModulesDir: "auto",
    imports: { ...imports, ...API_IMPORTS },
    scopes: {
      [pathToFileURL(RUNNER_ROOT).href + "/"]: runnerScope,
      // The more specific scope wins: a package kept inside the runner's directory (like the
      // examples) still resolves with its own imports.
      [pathToFileURL(pkg).href + "/"]: { ...imports, ...API_IMPORTS },
    },
  };
}

async function readOptional(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "";
    throw error;
  }
}

/**
 * A digest of everything an install is made from: the package's deno.json and lock, the
 * runner's own imports, unstable flags and lock, where the runner is, and the Deno version. An install whose
 * stamp differs is out of date.
 */
export async function installInputs(pkg: string): Promise<string> {
  const file = packageConfigFile(pkg);
  const parts = [
    GENERATED_FORMAT,
    RUNNER_ROOT,
    Deno.version.deno,
    file ? await readOptional(file) : "",
    await readOptional(join(pkg, "deno.lock")),
    // Only what the generated configuration takes from it: a new task is no reason to reinstall.
    JSON.stringify(await runnerDenoJson().then((r) => [r.imports, r.unstable])),
    await readOptional(join(RUNNER_ROOT, "deno.lock")),
  ];
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(JSON.stringify(parts)),
  );
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Records that `pkg` was installed from its current inputs. */
export async function writeStamp(pkg: string): Promise<void> {
  await Deno.writeTextFile(
    join(pkg, GENERATED_DIR, STAMP_FILE),
    JSON.stringify({ inputs: await installInputs(pkg) }, null, 2) + "\n",
  );
}

/** The command that installs the packages of a runner configuration. */
export function installCommand(configFile: string | null): string {
  return `deno task install --config ${configFile ?? "<runner config>"}`;
}

/**
 * Why a package cannot run as installed (not installed, or installed from other files than
 * it has now), naming the command that fixes it; null when its install is current.
 */
export async function packageProblem(
  pkg: string,
  configFile: string | null,
): Promise<string | null> {
  const fix = `run \`${installCommand(configFile)}\``;
  let stamp: { inputs?: unknown };
  try {
    stamp = JSON.parse(await Deno.readTextFile(join(pkg, GENERATED_DIR, STAMP_FILE)));
  } catch {
    return `the plugin package ${pkg} is not installed: ${fix}`;
  }
  if (stamp.inputs !== await installInputs(pkg)) {
    return `the plugin package ${pkg} changed (its deno.json or deno.lock, or the runner's) ` +
      `since it was installed: ${fix}`;
  }
  try {
    await Deno.stat(join(pkg, GENERATED_DIR, "node_modules"));
  } catch {
    // A package without npm dependencies has none; the runner's own are always there.
    return `the plugin package ${pkg} has no installed dependencies: ${fix}`;
  }
  return null;
}
