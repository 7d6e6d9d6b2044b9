/**
 * Write Apache APISIX plugins in TypeScript and run them with apisix-deno-plugin-runner.
 *
 * A plugin is a module whose default export comes from {@linkcode definePlugin}: a name, an
 * optional `parseConf` that validates each route's conf once, a `requestFilter` for
 * `ext-plugin-pre-req` / `ext-plugin-post-req`, and a `responseFilter` for
 * `ext-plugin-post-resp`. The runner runs each plugin in a permission-restricted worker inside
 * a sandbox process and speaks APISIX's ext-plugin protocol for it.
 *
 * - {@linkcode PluginRequest}: the request (`req`): method, path, headers, args, variables,
 *   body. Reading never counts as a change; every write becomes part of the rewrite.
 * - {@linkcode PluginResponse}: the client response (`res`) of the request phase: set `status`
 *   or `body` to answer the client yourself, or only `headers` to add headers to the upstream's
 *   response.
 * - {@linkcode UpstreamResponse}: the upstream response in `responseFilter`.
 * - `@apisix/deno-plugin-runner/testing`: run a plugin in a unit test, without APISIX.
 *
 * @example A plugin that adds a header and answers some requests itself
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 *
 * interface Conf {
 *   blocked: string[];
 * }
 *
 * export default definePlugin<Conf>({
 *   name: "block-paths",
 *   parseConf(raw) {
 *     const conf = JSON.parse(raw);
 *     if (!Array.isArray(conf.blocked)) throw new TypeError("blocked must be a list of paths");
 *     return conf;
 *   },
 *   requestFilter(conf, req, res) {
 *     if (conf.blocked.includes(req.path)) {
 *       res.status = 404;
 *       res.body = "not here";
 *       return;
 *     }
 *     req.headers.set("x-checked", "1");
 *   },
 * });
 * ```
 *
 * @module
 */
export { definePlugin } from "./api/define.ts";
export { isIgnoredResponseHeader } from "./api/headers.ts";
export type {
  ArgMap,
  HeaderMap,
  HttpMethod,
  Plugin,
  PluginRequest,
  PluginResponse,
  Prefetch,
  UpstreamResponse,
} from "./api/types.ts";
