/**
 * `check`: validates the configuration, loads every plugin in its sandbox (as `run` would),
 * and runs each plugin's `parseConf` on sample confs from the command line. Prints one line per
 * finding and exits non-zero when anything is wrong, so it fits a deploy pipeline.
 *
 * @module
 */
import { ConfigError, defaultConfig, loadConfig, type RunnerConfig } from "../config/config.ts";
import { missingEnvAdvice, missingPluginEnv } from "./env_hints.ts";
import { packageProblem } from "../config/packages.ts";
import { PluginRegistry } from "../sandboxes/plugin_registry.ts";
import { parseSections } from "../config/sections.ts";

/** What to check. */
export interface CheckOptions {
  /** The configuration file, or null for the bundled plugins with defaults. */
  configFile: string | null;
  /** Sample confs as `plugin=JSON` or `plugin=@file`. */
  confs: readonly string[];
  /** Load only these plugins (and those the sample confs name); empty: every plugin. */
  plugins: readonly string[];
}

/** Thrown for a malformed `--conf` argument (a usage error). */
export class SampleConfError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SampleConfError";
  }
}

interface Sample {
  plugin: string;
  raw: string;
  /** How the report names the sample. */
  label: string;
}

async function readSamples(specs: readonly string[]): Promise<Sample[]> {
  const samples: Sample[] = [];
  for (const spec of specs) {
    const at = spec.indexOf("=");
    if (at <= 0) {
      throw new SampleConfError(
        `--conf ${JSON.stringify(spec)}: expected PLUGIN=CONF (the conf as APISIX sends it, ` +
          `e.g. say='{"body":"hi"}') or PLUGIN=@FILE`,
      );
    }
    const plugin = spec.slice(0, at);
    let raw = spec.slice(at + 1);
    let label = raw.length > 60 ? `${raw.slice(0, 57)}...` : raw;
    if (raw.startsWith("@")) {
      const file = raw.slice(1);
      try {
        raw = await Deno.readTextFile(file);
      } catch (error) {
        throw new SampleConfError(`--conf ${plugin}=@${file}: ${(error as Error).message}`);
      }
      label = `@${file}`;
    }
    samples.push({ plugin, raw, label });
  }
  return samples;
}

/** Runs the check, printing findings with `print`; returns the exit code (0 or 1). */
export async function check(
  options: CheckOptions,
  print: (line: string) => void = console.log,
): Promise<number> {
  let problems = 0;
  const problem = (line: string) => {
    problems++;
    print(`error   ${line}`);
  };
  const samples = await readSamples(options.confs);

  let config: RunnerConfig;
  try {
    config = options.configFile ? await loadConfig(options.configFile) : defaultConfig();
    parseSections(config);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    problem(`config  ${error.message}`);
    print("check failed: the configuration is invalid");
    return 1;
  }
  const known = [...config.plugins.keys()];
  print(
    `ok      config  ${config.file ?? "(no file: the bundled plugins with defaults)"}: ` +
      `${known.length} plugin${known.length === 1 ? "" : "s"}`,
  );
  for (const missing of missingPluginEnv(config)) {
    print(`warning env     ${missingEnvAdvice(missing)}`);
  }

  const wanted = new Set(options.plugins.length ? options.plugins : known);
  for (const sample of samples) if (options.plugins.length) wanted.add(sample.plugin);
  for (const name of wanted) {
    if (!config.plugins.has(name)) {
      problem(`plugin  ${name}: not in the configuration (it has: ${known.join(", ")})`);
      wanted.delete(name);
    }
  }

  // A package whose install is missing or stale would fail in its sandbox with Deno's
  // multi-line cache error: say instead which command fixes it.
  for (const name of wanted) {
    const pkg = config.plugins.get(name)!.package;
    const notInstalled = pkg ? await packageProblem(pkg, config.file) : null;
    if (notInstalled) {
      problem(`plugin  ${name}: ${notInstalled}`);
      wanted.delete(name);
    }
  }

  const registry = new PluginRegistry(config);
  try {
    const supervisors = registry.supervisors.filter((s) =>
      s.hosts.some((h) => wanted.has(h.settings.name))
    );
    const timings = new Map<string, number>();
    await Promise.all(supervisors.map(async (supervisor) => {
      const started = performance.now();
      await supervisor.ensureStarted();
      timings.set(supervisor.key, performance.now() - started);
    }));
    const loaded = new Set<string>();
    for (const supervisor of supervisors) {
      for (const host of supervisor.hosts) {
        const name = host.settings.name;
        if (!wanted.has(name)) continue;
        if (supervisor.startError !== null || !host.attached) {
          problem(`plugin  ${name}: ${supervisor.startError ?? "its sandbox did not start"}`);
          continue;
        }
        loaded.add(name);
        const filters = [
          host.filters.request ? "requestFilter" : "",
          host.filters.response ? "responseFilter" : "",
        ].filter(Boolean).join(" + ");
        print(
          `ok      plugin  ${name}: loaded in ${host.settings.isolation} sandbox ` +
            `${supervisor.key} (${Math.round(timings.get(supervisor.key)!)} ms); ${filters}`,
        );
      }
    }

    for (const sample of samples) {
      const what = `conf    ${sample.plugin} ${sample.label}`;
      const host = registry.host(sample.plugin);
      if (!host) {
        problem(
          `${what}: no plugin named ${sample.plugin} (the configuration has: ${known.join(", ")})`,
        );
        continue;
      }
      if (!loaded.has(sample.plugin)) {
        problem(`${what}: not parsed: the plugin did not load`);
        continue;
      }
      const result = await host.prepare(sample.raw);
      if (result.ok) {
        print(`ok      ${what}: accepted`);
        host.release(result.handle);
      } else if (result.cause === "bad_conf") {
        problem(`${what}: rejected by parseConf: ${result.message}`);
      } else {
        problem(`${what}: parseConf failed (${result.cause}): ${result.message}`);
      }
    }
  } finally {
    await registry.close();
  }
  print(problems ? `check failed: ${problems} problem${problems > 1 ? "s" : ""}` : "check passed");
  return problems ? 1 : 0;
}
