/**
 * The test kit's engine: runs a prepared chain over one request or response the way the
 * runner's call path does (the same FlatBuffers in, the same lazy views, the same reply frame
 * out) and decodes what APISIX would be told into an outcome.
 *
 * @module
 */
import { ArgStore } from "../api/args.ts";
import { ByteWriter, decodeUtf8, encodeUtf8 } from "../api/bytes.ts";
import { assertPlugin, defaultParseConf } from "../api/define.ts";
import { HeaderStore } from "../api/headers.ts";
import { Patch } from "../api/patch.ts";
import { checkPrefetch, type PrefetchList, prefetchQuestions } from "../api/prefetch.ts";
import type { HttpMethod, Plugin } from "../api/types.ts";
import { type CallHost, RequestView, ResponseWriter, UpstreamResponseView } from "../api/views.ts";
import { IGNORED_RESPONSE_HEADERS } from "../protocol/apisix_rules.ts";
import { byteBuffer } from "../protocol/byte_buffer.ts";
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
import type {
  Ask,
  ChainLink,
  NoneOutcome,
  RequestOutcome,
  ResponseOutcome,
  RewriteOutcome,
  StopOutcome,
  TestRequest,
  TestResponse,
  UpstreamRequest,
} from "./types.ts";

/** A plugin whose shape was checked and whose conf was parsed, as a PrepareConf leaves it. */
export interface Prepared {
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

/** Checks a plugin's shape and parses its conf, as a PrepareConf does. */
export async function prepare(plugin: ChainLink[0], conf: unknown): Promise<Prepared> {
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
    const bb = byteBuffer(payload);
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

/** Runs a prepared chain over one request, as an HTTPReqCall; returns what APISIX is told. */
export async function runRequest(
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

/** Runs a prepared chain over one upstream response, as an HTTPRespCall. */
export async function runResponse(
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
    responseHeaders(patch, HttpRespCallReq.getRootAsHttpRespCallReq(byteBuffer(payload))),
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
