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
import { ByteBuffer } from "flatbuffers";
import { ArgStore } from "../api/args.ts";
import { ByteWriter, decodeUtf8, encodeUtf8 } from "../api/bytes.ts";
import { assertPlugin, defaultParseConf } from "../api/define.ts";
import { HeaderStore } from "../api/headers.ts";
import { Patch } from "../api/patch.ts";
import { checkPrefetch, type PrefetchList, prefetchQuestions } from "../api/prefetch.ts";
import type { ArgMap, HeaderMap, HttpMethod, Plugin } from "../api/types.ts";
import { type CallHost, RequestView, ResponseWriter, UpstreamResponseView } from "../api/views.ts";
import { IGNORED_RESPONSE_HEADERS } from "../protocol/apisix_rules.ts";
import { FrameEncoder } from "../protocol/encode.ts";
import { HttpReqCallReq } from "../protocol/gen/http_req_call_req.ts";
import { HttpRespCallReq } from "../protocol/gen/http_resp_call_req.ts";
import { requestAction, responseHeaders } from "../api/reply.ts";
import {
  decodeReqCallReply,
  decodeRespCallReply,
  encodeReqCall,
  encodeRespCall,
  parseIp,
  parseQuery,
  type TextPair,
} from "./wire.ts";

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

interface Prepared {
  plugin: Plugin<unknown>;
  conf: unknown;
  prefetch: PrefetchList | null;
}

const CONF_TOKEN = 1;
const REQUEST = 0;
const RESPONSE = 1;

function confString(conf: unknown): string {
  if (conf === undefined) return "";
  return typeof conf === "string" ? conf : JSON.stringify(conf);
}

async function prepare(plugin: ChainLink[0], conf: unknown): Promise<Prepared> {
  assertPlugin(plugin);
  const raw = confString(conf);
  const parsed = plugin.parseConf ? await plugin.parseConf(raw) : defaultParseConf(raw);
  const prefetch = checkPrefetch(plugin.prefetch?.(parsed));
  return { plugin: plugin as Plugin<unknown>, conf: parsed, prefetch };
}

function toBytes(body: string | Uint8Array | null | undefined): Uint8Array | null {
  if (body === undefined || body === null) return null;
  return typeof body === "string" ? encodeUtf8(body) : body;
}

function headerList(
  headers: TestRequest["headers"],
  lowerCase: boolean,
): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (!headers) return out;
  const pairs: Iterable<readonly [string, string | string[]]> = Symbol.iterator in headers
    ? headers as Iterable<readonly [string, string]>
    : Object.entries(headers);
  for (const [name, value] of pairs) {
    const key = lowerCase ? name.toLowerCase() : name;
    for (const v of Array.isArray(value) ? value : [value]) out.push([key, String(v)]);
  }
  return out;
}

function argList(args: TestRequest["args"]): TextPair[] {
  if (args === undefined) return [];
  if (typeof args === "string") return parseQuery(args);
  const out: TextPair[] = [];
  const pairs: Iterable<readonly [string, string | null | Array<string | null>]> =
    Symbol.iterator in args
      ? args as Iterable<readonly [string, string | null]>
      : Object.entries(args);
  for (const [name, value] of pairs) {
    for (const v of Array.isArray(value) ? value : [value]) out.push([name, v]);
  }
  return out;
}

type Answers = (info: "var" | "reqBody" | "respBody", name: string) => Uint8Array | null;

function answersFrom(
  vars: Record<string, string | null | undefined> | undefined,
  body: Uint8Array | null,
): Answers {
  return (info, name) => {
    if (info !== "var") return body;
    const value = vars && Object.hasOwn(vars, name) ? vars[name] : undefined;
    return value === undefined || value === null ? null : encodeUtf8(value);
  };
}

function encodePatch(patch: Patch): Uint8Array {
  const out = new ByteWriter(256);
  patch.encode(out);
  return out.take();
}

/** Runs `links` over `payload` as the runner's CallState does; returns the merged patch. */
async function runChain(
  links: readonly Prepared[],
  phase: number,
  payload: Uint8Array,
  answers: Answers,
): Promise<{ patch: Patch | null; asks: Ask[]; warnings: string[] }> {
  const asks: Ask[] = [];
  const warnings: string[] = [];
  const cache = new Map<string, Promise<Uint8Array | null>>();
  const ask = (info: "var" | "reqBody" | "respBody", name = "") => {
    // The runner never asks APISIX for a response body during the request phase.
    if (info === "respBody" && phase !== RESPONSE) return Promise.resolve(null);
    const key = info === "var" ? `var:${name}` : info;
    let answer = cache.get(key);
    if (!answer) {
      asks.push(info === "var" ? { kind: "var", name } : { kind: info });
      // A copy, as the runner hands each plugin bytes of its own.
      answer = Promise.resolve(answers(info, name)).then((bytes) => bytes && bytes.slice());
      cache.set(key, answer);
    }
    return answer;
  };
  let merged: Patch | null = null;
  let overlay: Patch | null = null;
  for (const { plugin, conf, prefetch } of links) {
    const filter = phase === REQUEST ? plugin.requestFilter : plugin.responseFilter;
    if (!filter) continue;
    // Declared ExtraInfo is asked before the filter runs, read or not, as the runner does.
    if (prefetch) {
      const response = phase === RESPONSE;
      const replaced = (response ? overlay?.responseBody : overlay?.requestBody) != null;
      const questions = prefetchQuestions(prefetch, response, replaced);
      await Promise.all(questions.map(([info, name]) => ask(info, name)));
    }
    const host: CallHost = {
      ask,
      warn: (message) => warnings.push(`${plugin.name}: ${message}`),
    };
    const bb = new ByteBuffer(payload);
    const collected = new Patch();
    if (phase === REQUEST) {
      const req = new RequestView(HttpReqCallReq.getRootAsHttpReqCallReq(bb), overlay, host);
      const res = new ResponseWriter(overlay, host);
      await plugin.requestFilter!(conf, req, res);
      req.collect(collected);
      res.collect(collected);
    } else {
      const res = new UpstreamResponseView(
        HttpRespCallReq.getRootAsHttpRespCallReq(bb),
        overlay,
        host,
      );
      await plugin.responseFilter!(conf, res);
      res.collect(collected);
    }
    // Through the binary form a worker sends the runner.
    const patch = Patch.decode(encodePatch(collected));
    if (patch.empty) continue;
    if (merged) merged.merge(patch);
    else merged = patch;
    if (merged.stop) break;
    overlay = Patch.decode(encodePatch(merged));
  }
  return { patch: merged, asks, warnings };
}

interface RequestInput {
  method: HttpMethod;
  path: string;
  args: TextPair[];
  headers: Array<[string, string]>;
  body: Uint8Array | null;
}

function upstreamRequest(
  input: RequestInput,
  reply?: { path: string | null; headers: TextPair[]; args: TextPair[]; body: Uint8Array | null },
): UpstreamRequest {
  const headers = HeaderStore.fromTrusted(input.headers);
  const args = new ArgStore(input.args);
  if (reply) {
    for (const [name, value] of reply.headers) {
      // APISIX sets each header; no value, or an empty one, removes it.
      headers.restore(name.toLowerCase(), value ? [value] : []);
    }
    const replaced = new Set<string>();
    for (const [name, value] of reply.args) {
      // No value removes the arg; the first value for a name replaces, later ones append.
      if (value === null) args.restore(name, []);
      else if (replaced.has(name)) args.restore(name, [...args.valuesOf(name), value]);
      else args.restore(name, [value]);
      replaced.add(name);
    }
  }
  const body = reply?.body ?? input.body ?? new Uint8Array();
  return {
    method: input.method,
    path: reply?.path ?? input.path,
    headers,
    args,
    body,
    text: decodeUtf8(body),
  };
}

function nonNull(entries: Array<[string, string | null]>): Array<[string, string]> {
  return entries.map(([name, value]) => [name, value ?? ""]);
}

async function runRequest(
  links: readonly Prepared[],
  request: TestRequest = {},
): Promise<RequestOutcome> {
  const [path, query] = splitPath(request.path ?? "/");
  const input: RequestInput = {
    method: request.method ?? "GET",
    path,
    args: [...parseQuery(query), ...argList(request.args)],
    headers: headerList(request.headers, true),
    body: toBytes(request.body),
  };
  const id = request.id ?? 0;
  const payload = encodeReqCall({
    id,
    srcIp: parseIp(request.srcIp ?? "127.0.0.1"),
    method: input.method,
    path: input.path,
    args: input.args,
    headers: input.headers,
    confToken: CONF_TOKEN,
  });
  const { patch, asks, warnings } = await runChain(
    links,
    REQUEST,
    payload,
    answersFrom(request.vars, input.body),
  );
  const reply = decodeReqCallReply(new FrameEncoder().reqCall(id, requestAction(patch)));
  switch (reply.kind) {
    case "stop": {
      const body = reply.body ?? new Uint8Array();
      const headers = nonNull(reply.headers);
      return {
        action: "stop",
        status: reply.status || 200,
        headers: HeaderStore.fromTrusted(headers),
        body,
        text: decodeUtf8(body),
        wire: { status: reply.status, headers, body: reply.body },
        asks,
        warnings,
      } satisfies StopOutcome;
    }
    case "rewrite": {
      const responseHeaders = nonNull(reply.respHeaders);
      return {
        action: "rewrite",
        upstream: upstreamRequest(input, reply),
        responseHeaders: HeaderStore.fromTrusted(responseHeaders),
        wire: {
          path: reply.path,
          headers: reply.headers,
          args: reply.args,
          responseHeaders,
          body: reply.body,
        },
        asks,
        warnings,
      } satisfies RewriteOutcome;
    }
    default:
      return {
        action: "none",
        upstream: upstreamRequest(input),
        responseHeaders: new HeaderStore(),
        asks,
        warnings,
      } satisfies NoneOutcome;
  }
}

function splitPath(path: string): [string, string] {
  const at = path.indexOf("?");
  return at < 0 ? [path, ""] : [path.slice(0, at), path.slice(at + 1)];
}

async function runResponse(
  links: readonly Prepared[],
  response: TestResponse = {},
): Promise<ResponseOutcome> {
  const id = response.id ?? 0;
  const status = response.status ?? 200;
  const upstreamHeaders = headerList(response.headers, false);
  const upstreamBody = toBytes(response.body);
  const payload = encodeRespCall({ id, status, headers: upstreamHeaders, confToken: CONF_TOKEN });
  const { patch, asks, warnings } = await runChain(
    links,
    RESPONSE,
    payload,
    answersFrom(response.vars, upstreamBody),
  );
  const frame = new FrameEncoder().respCall(
    id,
    patch?.status ?? 0,
    responseHeaders(patch, HttpRespCallReq.getRootAsHttpRespCallReq(new ByteBuffer(payload))),
    patch?.responseBody ?? null,
  );
  const reply = decodeRespCallReply(frame);
  const wireHeaders = nonNull(reply.headers);
  // APISIX: a header list replaces the upstream's; without one it copies the upstream's minus
  // the names it never copies (PROTOCOL.md §5.3).
  const headers = wireHeaders.length
    ? HeaderStore.fromTrusted(wireHeaders)
    : HeaderStore.fromTrusted(
      upstreamHeaders.filter(([name]) => !IGNORED_RESPONSE_HEADERS.has(name.toLowerCase())),
    );
  const body = reply.body ?? upstreamBody ?? new Uint8Array();
  return {
    status: reply.status || status,
    headers,
    body,
    text: decodeUtf8(body),
    wire: { status: reply.status, headers: wireHeaders, body: reply.body },
    asks,
    warnings,
  };
}

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

function describe(outcome: RequestOutcome): string {
  switch (outcome.action) {
    case "stop":
      return `a stop with status ${outcome.status} and body ${JSON.stringify(outcome.text)}`;
    case "rewrite":
      return `a rewrite ${
        JSON.stringify(outcome.wire, (_k, v) => v instanceof Uint8Array ? decodeUtf8(v) : v)
      }`;
    case "none":
      return "no action";
  }
}

/** The error the `assert*` helpers throw. */
class OutcomeError extends Error {
  constructor(expected: string, outcome: RequestOutcome) {
    super(`Expected ${expected}, got ${describe(outcome)}`);
    this.name = "AssertionError";
  }
}

/**
 * Asserts that the plugin answered the client itself, narrowing the outcome's type.
 *
 * @param outcome What {@linkcode PluginUnderTest.request} returned.
 * @throws {Error} An `AssertionError` that describes the actual outcome.
 *
 * @example
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 * import { assertStop, testPlugin } from "@apisix/deno-plugin-runner/testing";
 * import { equal } from "node:assert/strict";
 *
 * const hi = definePlugin({
 *   name: "hi",
 *   requestFilter(_conf, _req, res) {
 *     res.body = "hi";
 *   },
 * });
 * const outcome = await (await testPlugin(hi)).request();
 * assertStop(outcome);
 * equal(outcome.status, 200);
 * equal(outcome.text, "hi");
 * ```
 */
export function assertStop(outcome: RequestOutcome): asserts outcome is StopOutcome {
  if (outcome.action !== "stop") throw new OutcomeError("a stop", outcome);
}

/**
 * Asserts that the request goes upstream with changes, narrowing the outcome's type.
 *
 * @param outcome What {@linkcode PluginUnderTest.request} returned.
 * @throws {Error} An `AssertionError` that describes the actual outcome.
 *
 * @example
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 * import { assertRewrite, testPlugin } from "@apisix/deno-plugin-runner/testing";
 * import { equal } from "node:assert/strict";
 *
 * const move = definePlugin({
 *   name: "move",
 *   requestFilter(_conf, req) {
 *     req.path = "/new?from=old";
 *   },
 * });
 * const outcome = await (await testPlugin(move)).request({ path: "/old" });
 * assertRewrite(outcome);
 * equal(outcome.upstream.path, "/new");
 * equal(outcome.upstream.args.get("from"), "old");
 * ```
 */
export function assertRewrite(outcome: RequestOutcome): asserts outcome is RewriteOutcome {
  if (outcome.action !== "rewrite") throw new OutcomeError("a rewrite", outcome);
}

/**
 * Asserts that the request goes upstream unchanged, narrowing the outcome's type.
 *
 * @param outcome What {@linkcode PluginUnderTest.request} returned.
 * @throws {Error} An `AssertionError` that describes the actual outcome.
 *
 * @example
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 * import { assertNone, testPlugin } from "@apisix/deno-plugin-runner/testing";
 *
 * const look = definePlugin({
 *   name: "look",
 *   requestFilter(_conf, req) {
 *     console.log(req.method, req.path, req.headers.get("user-agent"));
 *   },
 * });
 * assertNone(await (await testPlugin(look)).request());
 * ```
 */
export function assertNone(outcome: RequestOutcome): asserts outcome is NoneOutcome {
  if (outcome.action !== "none") throw new OutcomeError("no action", outcome);
}
