/**
 * A test kit for plugin authors: run a plugin's `parseConf` and filters against a request or
 * response described in a unit test, with no socket, no sandbox and no APISIX, and get back
 * what APISIX would be told to do.
 *
 * It runs the runner's own code path: the test's request becomes the same `HTTPReqCall`
 * FlatBuffer APISIX sends, the plugin gets the runner's lazy request views, the variables and
 * bodies it asks for are answered from the test's input (and recorded, at most once each, as
 * the runner asks APISIX), and its changes become the same reply frame the runner writes, which
 * is decoded into a typed outcome.
 *
 * @example Testing a plugin
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 * import { assertStop, testPlugin } from "@apisix/deno-plugin-runner/testing";
 * import { deepEqual, equal } from "node:assert/strict";
 *
 * const deny = definePlugin<{ token: string }>({
 *   name: "deny",
 *   async requestFilter(conf, req, res) {
 *     if (req.headers.get("x-token") !== conf.token) {
 *       res.status = 401;
 *       res.body = `no entry for ${await req.var("remote_addr")}`;
 *     }
 *   },
 * });
 *
 * const plugin = await testPlugin(deny, { token: "s3cret" });
 * const denied = await plugin.request({ vars: { remote_addr: "10.0.0.1" } });
 * assertStop(denied);
 * equal(denied.status, 401);
 * equal(denied.text, "no entry for 10.0.0.1");
 * deepEqual(denied.asks, [{ kind: "var", name: "remote_addr" }]);
 *
 * const allowed = await plugin.request({ headers: { "X-Token": "s3cret" } });
 * equal(allowed.action, "none");
 * deepEqual(allowed.asks, []);
 * ```
 *
 * @module
 */
// Preparing a plugin, or a route's chain, with its conf (test_plugin.ts).
export { testChain, testPlugin } from "./test_plugin.ts";
// Narrowing an outcome to the action a test expects (assert.ts).
export { assertNone, assertRewrite, assertStop } from "./assert.ts";
// What a test describes and what it gets back (types.ts). The engine that runs a call the
// runner's way is run.ts; the FlatBuffers APISIX would send and receive are wire.ts.
export type {
  Ask,
  ChainLink,
  ChainUnderTest,
  NoneOutcome,
  OutcomeBase,
  PluginUnderTest,
  RequestOutcome,
  ResponseOutcome,
  RewriteOutcome,
  StopOutcome,
  TestRequest,
  TestResponse,
  UpstreamRequest,
} from "./types.ts";
// The plugin API's types, so that everything this module's signatures mention is reachable here.
export type {
  ArgMap,
  HeaderMap,
  HttpMethod,
  Plugin,
  PluginRequest,
  PluginResponse,
  UpstreamResponse,
} from "../api/types.ts";
