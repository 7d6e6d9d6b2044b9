/**
 * What the local gateway knows about one request while it plays APISIX: the request as nginx
 * parsed it, what plugins changed so far, and the nginx/APISIX variables a plugin may ask for
 * with ExtraInfo (PROTOCOL.md §4.4). Strings are Latin-1 byte strings.
 *
 * @module
 */
import { encodeLatin1 } from "../api/bytes.ts";
import type { Route } from "./routes.ts";
import { encodeArgs, escapePath, normalizePath, parseQuery } from "./uri.ts";
import type { Entry } from "./wire.ts";

/** Most request headers APISIX forwards (ngx_lua's default for get_headers). */
export const MAX_HEADERS = 100;

/** One request in flight through the gateway. */
export interface RequestState {
  route: Route;
  method: string;
  /** `$request_uri`: the path and query as the client sent them. */
  requestUri: string;
  /** `$uri`: decoded and normalized. */
  uri: string;
  /** `$upstream_uri` once a plugin rewrote the path (escaped), else null. */
  upstreamUri: string | null;
  /** The current args; `argsChanged` once a plugin rewrote them. */
  args: Entry[];
  argsChanged: boolean;
  /** The first raw value of each arg, for `$arg_<name>`. */
  rawArgs: Map<string, string>;
  /** The current request headers: lower-case names, one entry per value. */
  headers: Array<[string, string]>;
  /** The current request body (null: none). */
  body: Uint8Array | null;
  /** `$binary_remote_addr`. */
  srcIp: Uint8Array;
  remote: { address: string; port: number };
  server: { address: string; port: number };
  /** Response headers a Rewrite asked for (set on the client's response). */
  respHeaders: Entry[];
  /** The upstream's status, once known. */
  upstreamStatus: number | null;
  started: number;
}

/** The 4 or 16 bytes of an IP address. */
export function ipBytes(address: string): Uint8Array {
  if (/^\d+\.\d+\.\d+\.\d+$/.test(address)) return Uint8Array.from(address.split(".").map(Number));
  const v4mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (v4mapped) return ipBytes(v4mapped[1]!);
  const [head = "", tail = ""] = address.split("::");
  const parse = (part: string) => part ? part.split(":").map((h) => parseInt(h, 16)) : [];
  const left = parse(head);
  const right = parse(tail);
  const words = address.includes("::")
    ? [...left, ...new Array(8 - left.length - right.length).fill(0), ...right]
    : left;
  const out = new Uint8Array(16);
  words.forEach((word, i) => {
    out[i * 2] = word >> 8;
    out[i * 2 + 1] = word & 0xff;
  });
  return out;
}

/** Builds the state of a request (its body already read). */
export function requestState(
  request: Request,
  body: Uint8Array | null,
  route: Route,
  remote: { address: string; port: number },
  server: { address: string; port: number },
): { state: RequestState; dropped: number } {
  const url = new URL(request.url);
  const query = url.search.slice(1);
  const rawArgs = new Map<string, string>();
  for (const part of query.split("&")) {
    const at = part.indexOf("=");
    const name = at < 0 ? part : part.slice(0, at);
    if (name && !rawArgs.has(name)) rawArgs.set(name, at < 0 ? "" : part.slice(at + 1));
  }
  const headers: Array<[string, string]> = [];
  for (const [name, value] of request.headers) {
    if (name === "set-cookie") continue;
    headers.push([name, value]);
  }
  const dropped = Math.max(0, headers.length - MAX_HEADERS);
  return {
    state: {
      route,
      method: request.method,
      requestUri: url.pathname + url.search,
      uri: normalizePath(url.pathname),
      upstreamUri: null,
      args: parseQuery(query),
      argsChanged: false,
      rawArgs,
      headers: headers.slice(0, MAX_HEADERS),
      body,
      srcIp: ipBytes(remote.address),
      remote,
      server,
      respHeaders: [],
      upstreamStatus: null,
      started: performance.now(),
    },
    dropped,
  };
}

/** The path an HTTPReqCall carries: `$uri`, or `$upstream_uri` up to `?` once rewritten. */
export function callPath(state: RequestState): string {
  return state.upstreamUri ?? state.uri;
}

/** The path and query sent upstream. */
export function upstreamTarget(state: RequestState): string {
  if (!state.upstreamUri && !state.argsChanged) return state.requestUri;
  const path = state.upstreamUri ?? escapePath(state.uri);
  const query = encodeArgs(state.args);
  return query ? `${path}?${query}` : path;
}

function header(state: RequestState, name: string): string | null {
  const values = state.headers.filter(([n]) => n === name).map(([, v]) => v);
  return values.length ? values.join(", ") : null;
}

/** The value of an nginx/APISIX variable, as ExtraInfo answers it; null when unset. */
export function variable(state: RequestState, name: string): string | null {
  const query = encodeArgs(state.args);
  switch (name) {
    case "remote_addr":
    case "realip_remote_addr":
      return state.remote.address;
    case "remote_port":
      return String(state.remote.port);
    case "binary_remote_addr":
      return String.fromCharCode(...state.srcIp);
    case "server_addr":
      return state.server.address;
    case "server_port":
      return String(state.server.port);
    case "scheme":
      return "http";
    case "server_protocol":
      return "HTTP/1.1";
    case "request_method":
      return state.method;
    case "request_uri":
      return state.requestUri;
    case "uri":
      return state.uri;
    case "upstream_uri":
      return upstreamTarget(state);
    case "args":
    case "query_string":
      return state.argsChanged ? query : state.requestUri.split("?")[1] ?? "";
    case "is_args":
      return query ? "?" : "";
    case "host": {
      const host = header(state, "host");
      return host ? host.replace(/:\d+$/, "").toLowerCase() : state.server.address;
    }
    case "content_type":
      return header(state, "content-type");
    case "content_length":
      return header(state, "content-length");
    case "route_id":
      return state.route.id;
    case "request_time":
      return ((performance.now() - state.started) / 1000).toFixed(3);
    case "msec":
      return (Date.now() / 1000).toFixed(3);
    case "time_iso8601":
      return new Date().toISOString().replace(/\.\d+Z$/, "+00:00");
    case "upstream_status":
      return state.upstreamStatus === null ? null : String(state.upstreamStatus);
  }
  if (name.startsWith("http_")) return header(state, name.slice(5).replace(/_/g, "-"));
  if (name.startsWith("arg_")) return state.rawArgs.get(name.slice(4)) ?? null;
  if (name.startsWith("cookie_")) {
    const cookies = header(state, "cookie") ?? "";
    for (const part of cookies.split(/;\s*/)) {
      const at = part.indexOf("=");
      if (at > 0 && part.slice(0, at) === name.slice(7)) return part.slice(at + 1);
    }
    return null;
  }
  return null;
}

/** {@linkcode variable} as ExtraInfo bytes. */
export function variableBytes(state: RequestState, name: string): Uint8Array | null {
  const value = variable(state, name);
  return value === null ? null : encodeLatin1(value);
}
