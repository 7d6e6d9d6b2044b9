/**
 * Hints about the environment nginx hides. APISIX passes the runner only `PATH`, `APISIX_*` and
 * the variables declared in `nginx_config.envs`, so a variable a plugin was granted may simply
 * not be there; say so at start instead of letting the plugin see `undefined`.
 *
 * @module
 */
import type { RunnerConfig } from "../config/config.ts";

/** A variable a plugin may read that the runner's environment lacks. */
export interface MissingVariable {
  plugin: string;
  variable: string;
}

/** Variables granted to plugins (exact names; patterns are skipped) that are not set. */
export function missingPluginEnv(config: RunnerConfig): MissingVariable[] {
  const missing: MissingVariable[] = [];
  for (const settings of config.plugins.values()) {
    for (const variable of settings.permissions.env) {
      if (variable.includes("*")) continue;
      if (Deno.env.get(variable) === undefined) missing.push({ plugin: settings.name, variable });
    }
  }
  return missing;
}

/** The advice for one missing variable. */
export function missingEnvAdvice(missing: MissingVariable): string {
  return `plugin ${missing.plugin} may read ${missing.variable}, which is not set in the ` +
    `runner's environment; under APISIX declare it in config.yaml (nginx_config: envs: ` +
    `["${missing.variable}"]), since nginx passes only PATH, APISIX_* and declared variables`;
}
