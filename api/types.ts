/**
 * The types a plugin author works with. `mod.ts` re-exports them.
 *
 * @module
 */

/**
 * Request or response headers: case-insensitive names, several values per name, in order.
 *
 * It behaves like the web platform's `Headers`: `get` joins the values of a name with `", "`,
 * iteration is sorted by name, and `set-cookie` values are never joined. `getAll` adds access to
 * the individual values. Values are byte strings (one character per byte), so bytes that are not
 * valid UTF-8 come through and go back unchanged; setting a character above U+00FF, NUL, CR or LF
 * throws a `TypeError`.
 *
 * @example Reading and changing request headers
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 *
 * export default definePlugin({
 *   name: "auth-header",
 *   requestFilter(_conf, req) {
 *     const user = req.headers.get("x-user") ?? "anonymous";
 *     req.headers.set("x-auth-user", user);
 *     req.headers.delete("cookie");
 *   },
 * });
 * ```
 */
export interface HeaderMap extends Iterable<[string, string]> {
  /** The values of `name` joined with `", "`, or `null` when it is absent. */
  get(name: string): string | null;
  /** Every value of `name`, in order; an empty array when absent. */
  getAll(name: string): string[];
  /** Every `set-cookie` value, unjoined. */
  getSetCookie(): string[];
  /** Whether `name` is present. */
  has(name: string): boolean;
  /** Replaces every value of `name` with `value`. */
  set(name: string, value: string): void;
  /** Adds `value` after the existing values of `name`. */
  append(name: string, value: string): void;
  /** Removes `name` and all of its values. */
  delete(name: string): void;
  /** The number of distinct names. */
  readonly size: number;
  /** `[name, value]` pairs sorted by name, values joined except for `set-cookie`. */
  entries(): IterableIterator<[string, string]>;
  /** The names, as `entries()` yields them. */
  keys(): IterableIterator<string>;
  /** The values, as `entries()` yields them. */
  values(): IterableIterator<string>;
  /** Calls `callback` once for each pair that `entries()` yields. */
  forEach(callback: (value: string, name: string, headers: HeaderMap) => void): void;
}

/**
 * Query arguments, like `URLSearchParams` but keeping what APISIX can express: repeated names
 * keep every value in order, and an argument without `=` (`?debug`) is present with no value.
 * Names and values are decoded text (APISIX has already percent-decoded them). A byte that is not
 * part of valid UTF-8 appears as the lone surrogate U+DC80–U+DCFF (U+DC00 plus the byte, as
 * Python's "surrogateescape") and is sent back as that same byte.
 *
 * @example Reading and changing args
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 *
 * export default definePlugin({
 *   name: "paging",
 *   requestFilter(_conf, req) {
 *     const tags = req.args.getAll("tag"); // ?tag=a&tag=b → ["a", "b"]
 *     if (!req.args.has("limit")) req.args.set("limit", "20");
 *     req.args.delete("debug");
 *     req.headers.set("x-tags", tags.join(","));
 *   },
 * });
 * ```
 */
export interface ArgMap extends Iterable<[string, string]> {
  /** The first value of `name` (`""` for a value-less arg), or `null` when absent. */
  get(name: string): string | null;
  /** Every value of `name` in order (`""` for value-less ones). */
  getAll(name: string): string[];
  /** Whether `name` is present (with `value`, when given). */
  has(name: string, value?: string): boolean;
  /** Replaces every value of `name` with `value`. */
  set(name: string, value: string): void;
  /** Adds `value` after the existing values of `name`. */
  append(name: string, value: string): void;
  /** Removes `name` (only its entries equal to `value`, when given). */
  delete(name: string, value?: string): void;
  /** The number of entries, counting repeated names. */
  readonly size: number;
  /** `[name, value]` pairs in order (`""` for value-less args). */
  entries(): IterableIterator<[string, string]>;
  /** The name of every entry. */
  keys(): IterableIterator<string>;
  /** The value of every entry. */
  values(): IterableIterator<string>;
  /** Calls `callback` once for each entry. */
  forEach(callback: (value: string, name: string, args: ArgMap) => void): void;
  /** Every entry with `null` as the value of a value-less arg, which `entries()` cannot show. */
  raw(): Array<[string, string | null]>;
  /** The args as a query string without the leading `?` (value-less args stay without `=`). */
  toString(): string;
}

/**
 * An HTTP method APISIX can forward to a runner (APISIX answers other methods itself).
 *
 * @example Only letting reads through
 * ```ts
 * import { definePlugin, type HttpMethod } from "@apisix/deno-plugin-runner";
 *
 * const READS: ReadonlySet<HttpMethod> = new Set(["GET", "HEAD", "OPTIONS"]);
 *
 * export default definePlugin({
 *   name: "read-only",
 *   requestFilter(_conf, req, res) {
 *     if (!READS.has(req.method)) res.status = 405;
 *   },
 * });
 * ```
 */
export type HttpMethod =
  | "GET"
  | "HEAD"
  | "POST"
  | "PUT"
  | "DELETE"
  | "MKCOL"
  | "COPY"
  | "MOVE"
  | "OPTIONS"
  | "PROPFIND"
  | "PROPPATCH"
  | "LOCK"
  | "UNLOCK"
  | "PATCH"
  | "TRACE";

/**
 * The client request as APISIX forwards it to `requestFilter`. Reading never counts as a change;
 * every write becomes part of the rewrite APISIX applies before proxying, and the next plugin in
 * the route's conf list sees it.
 *
 * @example Rewriting a request
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 *
 * export default definePlugin({
 *   name: "versioned",
 *   async requestFilter(_conf, req) {
 *     if (req.method === "GET" && req.path.startsWith("/api/")) {
 *       req.path = "/v2" + req.path;
 *       req.headers.set("x-client-ip", req.srcIp);
 *       req.headers.set("x-route", (await req.var("route_id")) ?? "unknown");
 *     }
 *   },
 * });
 * ```
 */
export interface PluginRequest {
  /** APISIX's id for this call (worker id and a counter); unique among calls in flight. */
  readonly id: number;
  /** The client address (after APISIX's real-ip handling), e.g. `"127.0.0.1"` or `"::1"`. */
  readonly srcIp: string;
  /** The request method. */
  readonly method: HttpMethod;
  /**
   * The decoded path without the query string (bytes that are not UTF-8 as for
   * {@linkcode ArgMap}, so they survive a rewrite). Setting it rewrites the upstream path; a `?` in
   * the new value splits off a query whose args replace the args of the same names.
   */
  path: string;
  /** The request headers (names in lower case). */
  readonly headers: HeaderMap;
  /** The query args. */
  readonly args: ArgMap;
  /**
   * An nginx or APISIX variable (`remote_addr`, `route_id`, `cookie_session`, ...), asked from
   * APISIX once per call and cached; `null` when it is unset.
   */
  var(name: string): Promise<string | null>;
  /**
   * The request body, asked from APISIX once per call (empty when there is none). The bytes are
   * backed by an `ArrayBuffer`, so Web APIs such as `crypto.subtle.digest` take them as they are.
   */
  body(): Promise<Uint8Array<ArrayBuffer>>;
  /** The request body decoded as UTF-8. */
  text(): Promise<string>;
  /** The request body parsed as JSON. */
  json<T = unknown>(): Promise<T>;
  /**
   * Replaces the body sent upstream (APISIX ≥ 3.6). APISIX cannot send an empty replacement,
   * so an empty body is ignored with a warning.
   */
  setBody(body: string | Uint8Array): void;
}

/**
 * The client response a `requestFilter` can write.
 *
 * Setting `status` or `body` answers the client at once: APISIX does not proxy the request and
 * later plugins in the conf list do not run. Headers set without a status or body are instead
 * added to the upstream's response when it reaches the client (APISIX ≥ 2.13; APISIX ignores
 * hop-by-hop and entity headers such as `content-type` there, so the runner drops those with a
 * warning).
 *
 * @example Answering the client directly
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 *
 * export default definePlugin({
 *   name: "deny-bots",
 *   requestFilter(_conf, req, res) {
 *     if (/bot/i.test(req.headers.get("user-agent") ?? "")) {
 *       res.status = 403;
 *       res.headers.set("content-type", "text/plain");
 *       res.body = "no bots";
 *     } else {
 *       res.headers.set("x-checked-by", "deny-bots");
 *     }
 *   },
 * });
 * ```
 */
export interface PluginResponse {
  /** The status to answer with; 200 until set. Setting it stops the request. */
  status: number;
  /** Headers for the client response. */
  readonly headers: HeaderMap;
  /** The body to answer with; `null` until set. Setting it stops the request. */
  body: string | Uint8Array | null;
  /** Whether the request is answered here (status or body was set). */
  readonly stopped: boolean;
}

/**
 * The upstream response, as `responseFilter` sees it (ext-plugin-post-resp, APISIX ≥ 2.14.1).
 * Changes to status, headers and body are what the client receives.
 *
 * @example Changing an upstream response
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 *
 * export default definePlugin({
 *   name: "redact",
 *   async responseFilter(_conf, res) {
 *     res.headers.delete("server");
 *     if (res.headers.get("content-type")?.startsWith("application/json")) {
 *       const data = await res.json<Record<string, unknown>>();
 *       delete data.secret;
 *       res.setBody(JSON.stringify(data));
 *     }
 *   },
 * });
 * ```
 */
export interface UpstreamResponse {
  /** APISIX's id for this call. */
  readonly id: number;
  /** The upstream status; setting it changes the status the client gets. */
  status: number;
  /** The upstream headers (names in lower case). */
  readonly headers: HeaderMap;
  /** The upstream headers exactly as received, names in their original case, in order. */
  readonly rawHeaders: ReadonlyArray<readonly [string, string]>;
  /**
   * The upstream body, asked from APISIX at most once per call however often it is read
   * (APISIX ≥ 3.0), backed by an `ArrayBuffer`.
   */
  body(): Promise<Uint8Array<ArrayBuffer>>;
  /** The upstream body decoded as UTF-8. */
  text(): Promise<string>;
  /** The upstream body parsed as JSON. */
  json<T = unknown>(): Promise<T>;
  /** Replaces the body the client gets. An empty body is ignored with a warning. */
  setBody(body: string | Uint8Array): void;
  /** An nginx or APISIX variable (`uri`, `request_method`, ...), as for requests. */
  var(name: string): Promise<string | null>;
}

/**
 * ExtraInfo a plugin reads on every call with one conf, returned by its `prefetch(conf)`.
 *
 * Reading a variable or a body makes the runner ask APISIX in the middle of the call: the
 * question travels from the plugin's sandbox to the runner and the answer back. What a plugin
 * declares here is asked before the call reaches the sandbox and travels with it, which saves
 * that round trip. Reading stays the same (`await req.var(name)`, `await req.body()`); what is
 * declared is asked on every call, read or not, so declare only what every call reads.
 * At most 32 vars; names are 1-256 printable ASCII characters.
 *
 * @example A plugin that always reads one variable and the request body
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 *
 * export default definePlugin<{ header: string }>({
 *   name: "body-size",
 *   parseConf: (raw) => JSON.parse(raw),
 *   prefetch: () => ({ vars: ["remote_addr"], requestBody: true }),
 *   async requestFilter(conf, req) {
 *     const size = (await req.body()).length;
 *     req.headers.set(conf.header, `${size} from ${await req.var("remote_addr")}`);
 *   },
 * });
 * ```
 */
export interface Prefetch {
  /** Variables the filters read with `var()`. */
  readonly vars?: readonly string[];
  /** Whether `requestFilter` reads the request body. */
  readonly requestBody?: boolean;
  /** Whether `responseFilter` reads the upstream body. */
  readonly responseBody?: boolean;
}

/**
 * A plugin: the default export of a plugin module.
 *
 * `parseConf` runs once per route conf (each PrepareConf) inside the plugin's sandbox; what it
 * returns is handed to every filter call of that route, so per-route state belongs there (each
 * PrepareConf gets its own parse, even for identical conf strings, and the runner parses it again
 * after the plugin's sandbox restarts). When it throws, the route runs without this plugin and the runner logs the plugin, the route key
 * and the reason. Without `parseConf`, the conf string is parsed as JSON.
 *
 * @typeParam Conf The parsed configuration.
 *
 * @example A complete plugin
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 *
 * interface Conf {
 *   body: string;
 * }
 *
 * export default definePlugin<Conf>({
 *   name: "hello",
 *   parseConf(raw) {
 *     const conf = JSON.parse(raw);
 *     if (typeof conf.body !== "string") throw new TypeError("body must be a string");
 *     return conf;
 *   },
 *   requestFilter(conf, _req, res) {
 *     res.body = conf.body;
 *   },
 * });
 * ```
 */
export interface Plugin<Conf = unknown> {
  /** The name routes use in `ext-plugin-*` conf lists, e.g. `"say"`. */
  readonly name: string;
  /** Validates and prepares one route's conf string. */
  parseConf?(raw: string): Conf | Promise<Conf>;
  /**
   * What the filters read on every call with `conf` (see {@linkcode Prefetch}); runs once
   * after `parseConf`. Throwing rejects the conf like `parseConf` does.
   */
  prefetch?(conf: Conf): Prefetch | undefined;
  /** Runs for ext-plugin-pre-req and ext-plugin-post-req. */
  requestFilter?(conf: Conf, req: PluginRequest, res: PluginResponse): void | Promise<void>;
  /** Runs for ext-plugin-post-resp. */
  responseFilter?(conf: Conf, res: UpstreamResponse): void | Promise<void>;
}
