/**
 * What a unit test hands the test kit (a request, a response, a chain of plugins) and what it
 * gets back: the typed outcome of one call, as APISIX would be told it.
 *
 * @module
 */
import type { ArgMap, HeaderMap, HttpMethod, Plugin } from "../api/types.ts";

/**
 * A client request as a unit test describes it. Every field is optional: the default is
 * `GET /` from `127.0.0.1` with no args, headers, variables or body.
 *
 * @example A POST with args, headers, variables and a body
 * ```ts
 * import type { TestRequest } from "@apisix/deno-plugin-runner/testing";
 *
 * const request: TestRequest = {
 *   method: "POST",
 *   path: "/orders?draft&tag=a&tag=b", // a query here adds to `args`
 *   args: { page: "2" },
 *   headers: { "Content-Type": "application/json", "X-Forwarded-For": ["1.1.1.1", "2.2.2.2"] },
 *   vars: { route_id: "42", consumer_name: "alice" },
 *   body: JSON.stringify({ item: 1 }),
 *   srcIp: "2001:db8::1",
 * };
 * ```
 */
export interface TestRequest {
  /** APISIX's call id (default 0). */
  id?: number | undefined;
  /** The client address, IPv4 or IPv6 (default `"127.0.0.1"`). */
  srcIp?: string | undefined;
  /** The method (default `"GET"`). */
  method?: HttpMethod | undefined;
  /**
   * The decoded path (default `"/"`). A query string after `?` is split into args the way
   * APISIX does it (`+` is a space, `?flag` has no value, `y=` is empty) and comes before
   * `args`.
   */
  path?: string | undefined;
  /**
   * Query args: a query string, an object (a list for repeated names, `null` for a value-less
   * arg), or `[name, value]` pairs.
   */
  args?:
    | string
    | Record<string, string | null | Array<string | null>>
    | Iterable<readonly [string, string | null]>
    | undefined;
  /**
   * Request headers: an object (a list for repeated names) or `[name, value]` pairs. Names are
   * lower-cased as APISIX does; values are byte strings (one character per byte).
   */
  headers?: Record<string, string | string[]> | Iterable<readonly [string, string]> | undefined;
  /** What APISIX answers when the plugin asks for a variable; missing names are unset. */
  vars?: Record<string, string | null | undefined> | undefined;
  /** The request body; absent when omitted (a plugin then reads an empty body). */
  body?: string | Uint8Array | null | undefined;
}

/**
 * An upstream response as a unit test describes it, for `responseFilter`. The default is a 200
 * with no headers and no body.
 *
 * @example A JSON response
 * ```ts
 * import type { TestResponse } from "@apisix/deno-plugin-runner/testing";
 *
 * const response: TestResponse = {
 *   status: 200,
 *   headers: { "Content-Type": "application/json", "Set-Cookie": ["a=1", "b=2"] },
 *   body: JSON.stringify({ secret: "x", name: "n" }),
 *   vars: { uri: "/users/1" },
 * };
 * ```
 */
export interface TestResponse {
  /** APISIX's call id (default 0). */
  id?: number | undefined;
  /** The upstream status (default 200). */
  status?: number | undefined;
  /** Upstream headers; names keep their case, as APISIX sends them in this phase. */
  headers?: Record<string, string | string[]> | Iterable<readonly [string, string]> | undefined;
  /** The upstream body, answered when the plugin reads it. */
  body?: string | Uint8Array | null | undefined;
  /** What APISIX answers when the plugin asks for a variable. */
  vars?: Record<string, string | null | undefined> | undefined;
}

/**
 * One ExtraInfo question the runner would have sent APISIX. Each distinct question is asked at
 * most once per call, however often plugins read the value.
 *
 * @example Checking that a plugin fetches a variable only when it needs it
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 * import { testPlugin } from "@apisix/deno-plugin-runner/testing";
 * import { deepEqual } from "node:assert/strict";
 *
 * const plugin = await testPlugin(definePlugin({
 *   name: "who",
 *   async requestFilter(_conf, req) {
 *     if (req.headers.has("x-who")) {
 *       req.headers.set("x-who", (await req.var("consumer_name")) ?? "nobody");
 *       await req.var("consumer_name"); // asked once per call however often it is read
 *     }
 *   },
 * }));
 * deepEqual((await plugin.request()).asks, []);
 * const asked = await plugin.request({ headers: { "x-who": "?" } });
 * deepEqual(asked.asks, [{ kind: "var", name: "consumer_name" }]);
 * ```
 */
export type Ask =
  | { kind: "var"; name: string }
  | { kind: "reqBody" }
  | { kind: "respBody" };

/**
 * What every outcome reports besides its action.
 *
 * @example Reading the warnings of a call
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 * import { testPlugin } from "@apisix/deno-plugin-runner/testing";
 * import { deepEqual } from "node:assert/strict";
 *
 * const plugin = definePlugin({
 *   name: "typed",
 *   requestFilter(_conf, _req, res) {
 *     res.headers.set("content-type", "text/plain"); // APISIX ignores it while proxying
 *   },
 * });
 * const outcome = await (await testPlugin(plugin)).request();
 * deepEqual(outcome.warnings.length, 1);
 * ```
 */
export interface OutcomeBase {
  /** The ExtraInfo questions the runner would have asked APISIX, in order. */
  asks: Ask[];
  /** Warnings the runner would have logged for this call, each prefixed with the plugin. */
  warnings: string[];
}

/**
 * The request as APISIX sends it upstream after applying the reply.
 *
 * @example
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 * import { testPlugin } from "@apisix/deno-plugin-runner/testing";
 * import { equal } from "node:assert/strict";
 *
 * const plugin = definePlugin({
 *   name: "tag",
 *   requestFilter(_conf, req) {
 *     req.args.append("tag", "new");
 *   },
 * });
 * const outcome = await (await testPlugin(plugin)).request({ path: "/a?tag=old" });
 * if (outcome.action === "stop") throw new Error("unexpected stop");
 * equal(outcome.upstream.args.toString(), "tag=old&tag=new");
 * ```
 */
export interface UpstreamRequest {
  /** The method (plugins cannot change it). */
  method: HttpMethod;
  /** The decoded path. */
  path: string;
  /** The headers after the rewrite. */
  headers: HeaderMap;
  /** The args after the rewrite. */
  args: ArgMap;
  /** The body sent upstream (the client's unless a plugin replaced it). */
  body: Uint8Array;
  /** The body decoded as UTF-8. */
  text: string;
}

/**
 * A plugin answered the client itself: APISIX does not proxy the request.
 *
 * @example
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 * import { assertStop, testPlugin } from "@apisix/deno-plugin-runner/testing";
 * import { deepEqual, equal } from "node:assert/strict";
 *
 * const created = definePlugin({
 *   name: "created",
 *   requestFilter(_conf, _req, res) {
 *     res.headers.append("x-id", "1");
 *     res.headers.append("x-id", "2");
 *     res.status = 201;
 *     res.body = "made";
 *   },
 * });
 * const outcome = await (await testPlugin(created)).request();
 * assertStop(outcome);
 * equal(outcome.status, 201);
 * equal(outcome.text, "made");
 * deepEqual(outcome.headers.getAll("x-id"), ["1", "2"]);
 * deepEqual(outcome.wire.headers, [["x-id", "1"], ["x-id", "2"]]);
 * ```
 */
export interface StopOutcome extends OutcomeBase {
  /** The kind of outcome. */
  action: "stop";
  /** The status the client gets. */
  status: number;
  /** The headers the client gets (names lower-cased, as APISIX sends them). */
  headers: HeaderMap;
  /** The body the client gets. */
  body: Uint8Array;
  /** The body decoded as UTF-8. */
  text: string;
  /** The `Stop` action exactly as encoded (header texts as byte strings). */
  wire: {
    status: number;
    headers: Array<[string, string]>;
    body: Uint8Array | null;
  };
}

/**
 * The request goes upstream with changes.
 *
 * @example
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 * import { assertRewrite, testPlugin } from "@apisix/deno-plugin-runner/testing";
 * import { deepEqual, equal } from "node:assert/strict";
 *
 * const plugin = await testPlugin(definePlugin({
 *   name: "stamp",
 *   async requestFilter(_conf, req, res) {
 *     req.headers.set("x-ip", (await req.var("remote_addr")) ?? "");
 *     req.headers.delete("cookie");
 *     res.headers.set("x-served-by", "stamp");
 *   },
 * }));
 * const outcome = await plugin.request({
 *   headers: { cookie: "a=1" },
 *   vars: { remote_addr: "10.0.0.7" },
 * });
 * assertRewrite(outcome);
 * equal(outcome.upstream.headers.get("x-ip"), "10.0.0.7");
 * equal(outcome.upstream.headers.has("cookie"), false);
 * equal(outcome.responseHeaders.get("x-served-by"), "stamp");
 * deepEqual(outcome.wire.headers, [["x-ip", "10.0.0.7"], ["cookie", null]]);
 * ```
 */
export interface RewriteOutcome extends OutcomeBase {
  /** The kind of outcome. */
  action: "rewrite";
  /** The request as it goes upstream. */
  upstream: UpstreamRequest;
  /** Headers added to the client's response while proxying. */
  responseHeaders: HeaderMap;
  /** The `Rewrite` action exactly as encoded; a `null` value deletes. */
  wire: {
    path: string | null;
    headers: Array<[string, string | null]>;
    args: Array<[string, string | null]>;
    responseHeaders: Array<[string, string]>;
    body: Uint8Array | null;
  };
}

/**
 * The request goes upstream unchanged.
 *
 * @example
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 * import { assertNone, testPlugin } from "@apisix/deno-plugin-runner/testing";
 *
 * const reader = definePlugin({
 *   name: "reader",
 *   requestFilter(_conf, req) {
 *     req.headers.get("x-anything"); // reading is never a change
 *   },
 * });
 * assertNone(await (await testPlugin(reader)).request({ headers: { "x-anything": "1" } }));
 * ```
 */
export interface NoneOutcome extends OutcomeBase {
  /** The kind of outcome. */
  action: "none";
  /** The request as it goes upstream (as the client sent it). */
  upstream: UpstreamRequest;
  /** Always empty: nothing is added to the client's response. */
  responseHeaders: HeaderMap;
}

/**
 * What the request phase ends with.
 *
 * @example Switching on the action
 * ```ts
 * import type { RequestOutcome } from "@apisix/deno-plugin-runner/testing";
 *
 * function describe(outcome: RequestOutcome): string {
 *   switch (outcome.action) {
 *     case "stop":
 *       return `answered ${outcome.status}`;
 *     case "rewrite":
 *       return `proxied to ${outcome.upstream.path} with changes`;
 *     case "none":
 *       return "proxied unchanged";
 *   }
 * }
 * ```
 */
export type RequestOutcome = StopOutcome | RewriteOutcome | NoneOutcome;

/**
 * What the response phase ends with: the response the client gets.
 *
 * @example
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 * import { testPlugin } from "@apisix/deno-plugin-runner/testing";
 * import { deepEqual, equal } from "node:assert/strict";
 *
 * const upper = definePlugin({
 *   name: "upper",
 *   async responseFilter(_conf, res) {
 *     res.setBody((await res.text()).toUpperCase());
 *   },
 * });
 * const outcome = await (await testPlugin(upper)).response({ body: "hello" });
 * equal(outcome.text, "HELLO");
 * deepEqual(outcome.asks, [{ kind: "respBody" }]);
 * ```
 */
export interface ResponseOutcome extends OutcomeBase {
  /** The status the client gets. */
  status: number;
  /** The headers the client gets. */
  headers: HeaderMap;
  /** The body the client gets. */
  body: Uint8Array;
  /** The body decoded as UTF-8. */
  text: string;
  /** The `HTTPRespCall` reply exactly as encoded: 0 and `null` mean "unchanged". */
  wire: {
    status: number;
    headers: Array<[string, string]>;
    body: Uint8Array | null;
  };
}

/**
 * Runs a chain of plugins (one or more) the way the runner runs a route.
 *
 * @example
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 * import { testChain } from "@apisix/deno-plugin-runner/testing";
 * import { equal } from "node:assert/strict";
 *
 * const first = definePlugin({
 *   name: "first",
 *   requestFilter(_conf, req) {
 *     req.path = "/v2" + req.path;
 *   },
 * });
 * const second = definePlugin({
 *   name: "second",
 *   requestFilter(_conf, req) {
 *     req.headers.set("x-path-seen", req.path); // sees the first plugin's change
 *   },
 * });
 * const chain = await testChain([[first], [second]]);
 * const outcome = await chain.request({ path: "/users" });
 * if (outcome.action !== "rewrite") throw new Error("expected a rewrite");
 * equal(outcome.upstream.headers.get("x-path-seen"), "/v2/users");
 * ```
 */
export interface ChainUnderTest {
  /** Runs every `requestFilter` in order, as for `ext-plugin-pre-req` / `-post-req`. */
  request(request?: TestRequest): Promise<RequestOutcome>;
  /** Runs every `responseFilter` in order, as for `ext-plugin-post-resp`. */
  response(response?: TestResponse): Promise<ResponseOutcome>;
}

/**
 * One plugin with one parsed conf. The parsed conf is kept between calls, as the runner keeps
 * it between the requests of a route, so per-route state (counters, caches) carries over.
 *
 * @example
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 * import { testPlugin } from "@apisix/deno-plugin-runner/testing";
 * import { equal } from "node:assert/strict";
 *
 * const counter = definePlugin<{ count: number }>({
 *   name: "counter",
 *   parseConf: () => ({ count: 0 }),
 *   requestFilter(conf) {
 *     conf.count++;
 *   },
 * });
 * const plugin = await testPlugin(counter);
 * await plugin.request();
 * await plugin.request();
 * equal(plugin.conf.count, 2);
 * ```
 */
export interface PluginUnderTest<Conf> extends ChainUnderTest {
  /** What `parseConf` returned. */
  readonly conf: Conf;
}

/**
 * A plugin and its conf, for {@linkcode testChain}. The conf is a conf string as APISIX sends
 * it, or any other value, which is turned into JSON.
 *
 * @example
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 * import type { ChainLink } from "@apisix/deno-plugin-runner/testing";
 *
 * const hello = definePlugin<{ body: string }>({
 *   name: "hello",
 *   requestFilter(conf, _req, res) {
 *     res.body = conf.body;
 *   },
 * });
 * const link: ChainLink = [hello, { body: "hi" }];
 * ```
 */
// deno-lint-ignore no-explicit-any -- a chain mixes plugins of any conf type
export type ChainLink = readonly [plugin: Plugin<any>, conf?: unknown];
