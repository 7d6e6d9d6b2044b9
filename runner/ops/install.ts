/**
 * `install`: installs every plugin package's dependencies ahead of time, pinned by the
 * package's own lock, into the package's runner-owned directory, so that sandboxes start with
 * `--cached-only` and nothing is fetched while the runner serves. See docs/packages.md.
 *
 * @module
 */
import { join, relative } from "node:path";
import type { PluginSettings, RunnerConfig } from "../config/config.ts";
import {
  GENERATED_DIR,
  generatedConfig,
  generatedConfigFile,
  PackageError,
  packageImports,
  packageProblem,
  parseNpmSpec,
  RUNNER_ROOT,
  writeStamp,
} from "../config/packages.ts";

/** How to install. */
export interface InstallOptions {
  /** Fail when a package's lock is missing or out of date instead of writing it (for CI). */
  frozen: boolean;
  /** Where progress and problems go, one line each. */
  print: (line: string) => void;
}

interface Lock {
  version?: string;
  specifiers?: Record<string, string>;
  npm?: Record<string, unknown>;
  [key: string]: unknown;
}

async function readLock(path: string): Promise<Lock | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw new PackageError(`${path}: not a readable lock file: ${(error as Error).message}`);
  }
}

/** Runs `deno install` with `args` in `cwd`; throws with its output when it fails. */
async function denoInstall(args: string[], cwd: string): Promise<void> {
  const { code, stderr, stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["install", "--quiet", ...args],
    cwd,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  if (code !== 0) {
    const text = (new TextDecoder().decode(stderr) + new TextDecoder().decode(stdout)).trim();
    throw new PackageError(text.split("\n").slice(0, 12).join("\n"));
  }
}

/** The lock the package's sandbox config starts from: the package's pins and the runner's. */
function seedLock(pkgLock: Lock | null, runnerLock: Lock | null): Lock {
  return {
    version: pkgLock?.version ?? runnerLock?.version ?? "5",
    specifiers: { ...runnerLock?.specifiers, ...pkgLock?.specifiers },
    npm: { ...runnerLock?.npm, ...pkgLock?.npm },
  };
}

/** Every symbolic link under `dir` whose target lies outside `root`, as "link -> target". */
export async function linksLeaving(dir: string, root: string): Promise<string[]> {
  const out: string[] = [];
  const rootReal = await Deno.realPath(root);
  const walk = async (path: string) => {
    for await (const entry of Deno.readDir(path)) {
      const full = join(path, entry.name);
      if (entry.isSymlink) {
        let target: string;
        try {
          target = await Deno.realPath(full);
        } catch {
          out.push(`${full} -> (a dangling link)`);
          continue;
        }
        if (target !== rootReal && !target.startsWith(rootReal + "/")) {
          out.push(`${full} -> ${target}`);
        }
      } else if (entry.isDirectory) {
        await walk(full);
      }
    }
  };
  await walk(dir);
  return out;
}

/** Writes a file only when its content differs, so that a second install changes nothing. */
async function writeIfChanged(path: string, text: string): Promise<void> {
  try {
    if (await Deno.readTextFile(path) === text) return;
  } catch {
    // Not there yet.
  }
  await Deno.writeTextFile(path, text);
}

/** The deno.json `install` keeps for an `npm:` plugin's package: the plugin as its import. */
async function writeNpmPackage(pkg: string, spec: string, frozen: boolean): Promise<void> {
  const parsed = parseNpmSpec(spec)!;
  await Deno.mkdir(pkg, { recursive: true });
  const file = join(pkg, "deno.json");
  const text = JSON.stringify({ imports: { [parsed.name]: spec } }, null, 2) + "\n";
  if (frozen) {
    let current = "";
    try {
      current = await Deno.readTextFile(file);
    } catch {
      // Missing: reported below.
    }
    if (current !== text) {
      throw new PackageError(
        `${file} does not name ${spec}, and --frozen forbids writing it: run install ` +
          "without --frozen and keep the package's deno.json and deno.lock",
      );
    }
    return;
  }
  await writeIfChanged(file, text);
}

/** Installs one package; returns what it did, for the report. */
async function installPackage(
  pkg: string,
  plugins: readonly PluginSettings[],
  frozen: boolean,
): Promise<string> {
  const npm = plugins.find((p) => p.module.startsWith("npm:"));
  if (npm) await writeNpmPackage(pkg, npm.module, frozen);
  const imports = await packageImports(pkg);
  const gen = join(pkg, GENERATED_DIR);
  await Deno.mkdir(gen, { recursive: true });
  const pkgLockFile = join(pkg, "deno.lock");

  // 1. The package's own lock, the operator's pin: checked (--frozen) or created/updated from
  //    the package's imports alone (the runner's API is not a dependency to pin).
  const hadLock = (await readLock(pkgLockFile)) !== null;
  if (frozen && !hadLock) {
    throw new PackageError(`${pkgLockFile} is missing, and --frozen forbids creating it`);
  }
  const pin = join(gen, "pin.json");
  await writeIfChanged(pin, JSON.stringify({ imports }, null, 2) + "\n");
  try {
    await denoInstall(
      [`--config=${pin}`, `--lock=${pkgLockFile}`, "--node-modules-dir=none"].concat(
        frozen ? ["--frozen"] : [],
      ),
      pkg,
    );
  } catch (error) {
    const why = (error as Error).message;
    throw new PackageError(
      frozen && /out of date|frozen/i.test(why)
        ? `${pkgLockFile} is out of date with ${pkg}/deno.json (--frozen): run install ` +
          `without --frozen and commit the new lock\n${why}`
        : why,
    );
  }
  const pkgLock = await readLock(pkgLockFile);

  // 2. The sandbox's configuration, its lock seeded with the package's and the runner's pins,
  //    and node_modules inside the package.
  const configFile = generatedConfigFile(pkg);
  await writeIfChanged(
    configFile,
    JSON.stringify(await generatedConfig(pkg, imports), null, 2) + "\n",
  );
  const genLockFile = join(gen, "deno.lock");
  const runnerLock = await readLock(join(RUNNER_ROOT, "deno.lock"));
  // Seeded afresh each time: a pin the package's lock moved must win over an older install's.
  const seeded = seedLock(pkgLock, runnerLock);
  await Deno.writeTextFile(genLockFile, JSON.stringify(seeded, null, 2) + "\n");
  const entrypoints = [join(RUNNER_ROOT, "main.ts")];
  for (const plugin of plugins) {
    if (plugin.module.startsWith("file:")) entrypoints.push(new URL(plugin.module).pathname);
  }
  await denoInstall([`--config=${configFile}`, `--lock=${genLockFile}`], pkg);
  await denoInstall(
    [`--config=${configFile}`, `--lock=${genLockFile}`, "--entrypoint", ...entrypoints],
    pkg,
  );

  // 3. What got installed is what the package's lock pins.
  const installed = (await readLock(genLockFile))?.specifiers ?? {};
  for (const [specifier, version] of Object.entries(pkgLock?.specifiers ?? {})) {
    if (installed[specifier] !== version) {
      throw new PackageError(
        `${specifier}: the package's lock pins ${version} but ${
          installed[specifier] ?? "nothing"
        } was installed`,
      );
    }
  }
  // 4. No link leads a plugin out of its package (node_modules/.deno links are relative).
  const leaving = await linksLeaving(pkg, pkg);
  if (leaving.length) {
    throw new PackageError(
      `links lead out of the package, which its plugin could then read: ${
        leaving.slice(0, 5).join(", ")
      }`,
    );
  }
  await writeStamp(pkg);
  const pinned = Object.keys(pkgLock?.specifiers ?? {}).length;
  return `${hadLock ? "" : "created deno.lock; "}${pinned} pinned dependenc${
    pinned === 1 ? "y" : "ies"
  }`;
}

/** Installs the packages of `config`; prints one line per package; returns the exit code. */
export async function installPackages(
  config: RunnerConfig,
  options: InstallOptions,
): Promise<number> {
  if (Deno.build.standalone) {
    options.print(
      "error   a compiled runner binary cannot install plugin packages (it cannot load them " +
        "from disk either): run `deno task install` and `deno task start` from a checkout",
    );
    return 2;
  }
  const packages = new Map<string, PluginSettings[]>();
  for (const plugin of config.plugins.values()) {
    if (!plugin.package) continue;
    packages.set(plugin.package, [...(packages.get(plugin.package) ?? []), plugin]);
  }
  let problems = 0;
  for (const [pkg, plugins] of packages) {
    const names = plugins.map((p) => p.name).join(", ");
    const shown = relative(Deno.cwd(), pkg) || ".";
    const started = performance.now();
    try {
      if (await packageProblem(pkg, config.file) === null) {
        options.print(`ok      package ${shown} (${names}): up to date`);
        continue;
      }
      const what = await installPackage(pkg, plugins, options.frozen);
      const ms = Math.round(performance.now() - started);
      options.print(`ok      package ${shown} (${names}): installed in ${ms} ms; ${what}`);
    } catch (error) {
      if (!(error instanceof PackageError)) throw error;
      problems++;
      options.print(`error   package ${shown} (${names}): ${error.message}`);
    }
  }
  if (packages.size === 0) options.print("ok      no plugin packages to install");
  options.print(problems ? `install failed: ${problems} package(s)` : "install done");
  return problems ? 1 : 0;
}
