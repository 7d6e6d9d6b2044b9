/**
 * Preparing a plugin, or a route's chain of plugins, for unit tests: {@linkcode testPlugin} and
 * {@linkcode testChain}.
 *
 * @module
 */
import type { Plugin } from "../api/types.ts";
import { prepare, type Prepared, runRequest, runResponse } from "./run.ts";
import type { ChainLink, ChainUnderTest, PluginUnderTest } from "./types.ts";
/**
 * Prepares a plugin with a conf, as a PrepareConf does: the plugin's shape is checked and its
 * `parseConf` runs once (without one, the conf is parsed as JSON). A conf the plugin rejects
 * makes this reject with the plugin's own error, whose message is what the runner would log.
 *
 * @typeParam Conf The plugin's parsed conf.
 * @param plugin The plugin (a module's default export).
 * @param conf The conf: a string is passed to `parseConf` as it is, anything else as JSON.
 * @returns The plugin with its parsed conf, ready for requests and responses.
 *
 * @example A plugin with state in its conf
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 * import { assertStop, testPlugin } from "@apisix/deno-plugin-runner/testing";
 * import { equal, rejects } from "node:assert/strict";
 *
 * const once = definePlugin<{ seen: Set<string> }>({
 *   name: "once",
 *   parseConf: () => ({ seen: new Set() }),
 *   requestFilter(conf, req, res) {
 *     const key = req.headers.get("x-key") ?? "";
 *     if (conf.seen.has(key)) res.status = 409;
 *     conf.seen.add(key);
 *   },
 * });
 * const plugin = await testPlugin(once);
 * equal((await plugin.request({ headers: { "x-key": "a" } })).action, "none");
 * const again = await plugin.request({ headers: { "x-key": "a" } });
 * assertStop(again);
 * equal(again.status, 409);
 *
 * // A conf the plugin rejects:
 * const strict = definePlugin<number>({
 *   name: "strict",
 *   parseConf(raw) {
 *     const n = JSON.parse(raw);
 *     if (typeof n !== "number") throw new TypeError("expected a number");
 *     return n;
 *   },
 *   requestFilter() {},
 * });
 * await rejects(testPlugin(strict, "\"x\""), /expected a number/);
 * ```
 */
export async function testPlugin<Conf>(
  plugin: Plugin<Conf>,
  conf?: unknown,
): Promise<PluginUnderTest<Conf>> {
  const prepared = await prepare(plugin, conf);
  return {
    conf: prepared.conf as Conf,
    request: (request) => runRequest([prepared], request),
    response: (response) => runResponse([prepared], response),
  };
}

/**
 * Prepares several plugins as one route's chain, in conf order: each plugin sees the changes
 * of the ones before it, a plugin that answers the client ends the chain, and variables and
 * bodies are asked for once per call across the chain, as the runner does. Rejects with the
 * error of the first conf a plugin rejects.
 *
 * @param links `[plugin, conf]` pairs in the route's conf order.
 * @returns The chain, ready for requests and responses.
 *
 * @example Two plugins on one route
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 * import { assertStop, testChain } from "@apisix/deno-plugin-runner/testing";
 * import { deepEqual, equal } from "node:assert/strict";
 *
 * const tagger = definePlugin({
 *   name: "tagger",
 *   requestFilter(_conf, req) {
 *     req.headers.set("x-stage", "one");
 *   },
 * });
 * const echo = definePlugin({
 *   name: "echo",
 *   async requestFilter(_conf, req, res) {
 *     res.body = `${req.headers.get("x-stage")} ${await req.var("route_id")}`;
 *   },
 * });
 * const chain = await testChain([[tagger], [echo]]);
 * const outcome = await chain.request({ vars: { route_id: "7" } });
 * assertStop(outcome);
 * equal(outcome.text, "one 7");
 * deepEqual(outcome.asks, [{ kind: "var", name: "route_id" }]);
 * ```
 */
export async function testChain(links: readonly ChainLink[]): Promise<ChainUnderTest> {
  const prepared: Prepared[] = [];
  for (const [plugin, conf] of links) prepared.push(await prepare(plugin, conf));
  return {
    request: (request) => runRequest(prepared, request),
    response: (response) => runResponse(prepared, response),
  };
}
