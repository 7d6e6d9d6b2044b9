/**
 * {@linkcode definePlugin} and the check the runner applies to a plugin module's default export.
 *
 * @module
 */
import type { Plugin } from "./types.ts";

/** Plugin names as APISIX accepts them in a conf list: 1 to 128 characters. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Declares a plugin. It returns its argument unchanged, typed, after checking its shape, so a
 * mistake shows when the module loads rather than on the first request.
 *
 * @typeParam Conf The type `parseConf` returns and the filters receive.
 * @param plugin The plugin: `name`, optional `parseConf`, and at least one filter.
 * @returns The same plugin object.
 *
 * @example A plugin that answers every request itself
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 *
 * export default definePlugin<{ body: string }>({
 *   name: "hello",
 *   parseConf: (raw) => JSON.parse(raw),
 *   requestFilter(conf, _req, res) {
 *     res.headers.set("content-type", "text/plain");
 *     res.body = conf.body;
 *   },
 * });
 * ```
 */
export function definePlugin<Conf = unknown>(plugin: Plugin<Conf>): Plugin<Conf> {
  assertPlugin(plugin);
  return plugin;
}

/** Throws a `TypeError` that says what is wrong unless `value` is a usable plugin. */
export function assertPlugin(value: unknown): asserts value is Plugin<unknown> {
  if (typeof value !== "object" || value === null) {
    throw new TypeError("A plugin must be an object (the module's default export)");
  }
  const plugin = value as Record<string, unknown>;
  if (typeof plugin.name !== "string" || !NAME.test(plugin.name)) {
    throw new TypeError(
      `A plugin needs a name of 1-128 letters, digits, ".", "_" or "-": got ${
        JSON.stringify(plugin.name)
      }`,
    );
  }
  for (const key of ["parseConf", "prefetch", "requestFilter", "responseFilter"]) {
    if (plugin[key] !== undefined && typeof plugin[key] !== "function") {
      throw new TypeError(`Plugin ${plugin.name}: ${key} must be a function`);
    }
  }
  if (!plugin.requestFilter && !plugin.responseFilter) {
    throw new TypeError(`Plugin ${plugin.name} needs a requestFilter or a responseFilter`);
  }
}

/** Parses a conf string the way a plugin without `parseConf` gets it: JSON, empty as null. */
export function defaultParseConf(raw: string): unknown {
  return raw.trim() === "" ? null : JSON.parse(raw);
}
