/**
 * The local gateway's request flow, as APISIX runs a route with ext-plugins: ext-plugin-pre-req
 * and ext-plugin-post-req send HTTPReqCall and apply its Stop or Rewrite (PROTOCOL.md §5.1,
 * §5.2); the request goes upstream; ext-plugin-post-resp sends HTTPRespCall with the upstream's
 * status and headers and applies the answer (§5.3). A runner failure is a 503, or, with
 * `allow_degradation`, as if the plugin were absent.
 *
 * @module
 */
import { encodeLatin1 } from "../api/bytes.ts";
import type { HttpMethod } from "../api/types.ts";
import { HOP_BY_HOP_AND_LENGTH, IGNORED_RESPONSE_HEADERS } from "../protocol/apisix_rules.ts";
import { RpcType } from "../protocol/frame.ts";
import { echoUpstream } from "./echo.ts";
import { callPath, type RequestState, upstreamTarget, variableBytes } from "./request_state.ts";
import type { Phase, Route } from "./routes.ts";
import {
  type Answerer,
  type RunnerClient,
  RunnerError,
  type TokenCache,
  withToken,
} from "./runner_client.ts";
import { applyArgs, escapePath } from "./uri.ts";
import {
  decodeReqCallAnswer,
  decodeRespCallAnswer,
  encodeReqCall,
  encodeRespCall,
  type Entry,
  METHODS,
} from "./wire.ts";

// The proxy-* names APISIX drops cannot be listed: the one a client or upstream sends is.
const HOP_BY_HOP = new Set([...HOP_BY_HOP_AND_LENGTH, "proxy-connection"]);

/** What the gateway needs to run a request. */
export interface GatewayDeps {
  client: RunnerClient;
  tokens: TokenCache;
  /** Logs what happened at one step (for the access line and debug logs). */
  note(step: string): void;
  /** Logs a line at debug level. */
  debug(message: string): void;
}

let nextId = 0;

/** The PrepareConf key APISIX would use (§4.2). */
export function confKey(route: Route, phase: Phase): string {
  return `route#${route.id}#${phase}#${route.version}`;
}

/** Bytes as a fetch body (which wants its own ArrayBuffer). */
function bodyInit(bytes: Uint8Array | null): Uint8Array<ArrayBuffer> | null {
  return bytes === null ? null : bytes.slice();
}

/** nginx's error page for a status without a body. */
function errorPage(status: number): Uint8Array | null {
  if (status < 400) return null;
  const text = `${status} ${STATUS_TEXT[status] ?? "Error"}`;
  return encodeLatin1(
    `<html>\r\n<head><title>${text}</title></head>\r\n<body>\r\n<center><h1>${text}</h1>` +
      `</center>\r\n<hr><center>openresty</center>\r\n</body>\r\n</html>\r\n`,
  );
}

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Not Allowed",
  413: "Request Entity Too Large",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Temporarily Unavailable",
  504: "Gateway Time-out",
};

/** A response with nginx's page (or `body`) and text/html. */
export function plainResponse(status: number, body?: string): Response {
  return new Response(body ?? bodyInit(errorPage(status)), {
    status,
    headers: { "content-type": body === undefined ? "text/html" : "text/plain" },
  });
}

/** Sets headers first-set-then-add, lower-cased, as APISIX does (§5.1.1, §5.3.1). */
function setThenAdd(target: Headers, entries: readonly Entry[], skip?: ReadonlySet<string>): void {
  const seen = new Set<string>();
  for (const [raw, value] of entries) {
    const name = raw.toLowerCase();
    if (value === null || skip?.has(name)) continue;
    try {
      if (seen.has(name)) target.append(name, value);
      else target.set(name, value);
      seen.add(name);
    } catch {
      // A name or value fetch's Headers refuses (nginx would pass it): dropped.
    }
  }
}

function answerer(state: RequestState, respBody?: () => Promise<Uint8Array | null>): Answerer {
  return (question) => {
    switch (question.info) {
      case "var":
        return variableBytes(state, question.name);
      case "reqBody":
        return state.body;
      case "respBody":
        return respBody ? respBody() : null;
      default:
        return null;
    }
  };
}

/** Applies a Rewrite to the request (§5.2). */
function applyRewrite(
  state: RequestState,
  answer: Extract<ReturnType<typeof decodeReqCallAnswer>, { action: "rewrite" }>,
): void {
  if (answer.path !== null && answer.path !== "") {
    state.upstreamUri = escapePath(answer.path);
  }
  for (const [raw, value] of answer.headers) {
    const name = raw.toLowerCase();
    state.headers = state.headers.filter(([n]) => n !== name);
    // nginx drops a header set to "", like a delete.
    if (value !== null && value !== "") state.headers.push([name, value]);
  }
  if (answer.body && answer.body.length > 0) state.body = answer.body;
  state.respHeaders.push(...answer.respHeaders);
  if (answer.args.length) {
    state.args = applyArgs(state.args, answer.args);
    state.argsChanged = true;
  }
}

/** Runs one HTTPReqCall phase. Returns a response when the request ends here. */
async function requestPhase(
  phase: Phase,
  state: RequestState,
  deps: GatewayDeps,
): Promise<Response | null> {
  const conf = state.route.plugins[phase];
  if (!conf) return null;
  const method = METHODS.indexOf(state.method as HttpMethod);
  const key = confKey(state.route, phase);
  let payload: Uint8Array;
  try {
    payload = await withToken(deps.tokens, key, conf.conf, (token) => {
      const id = nextId;
      nextId = (nextId + 1) % (1 << 22);
      return deps.client.exchange(
        RpcType.HttpReqCall,
        encodeReqCall({
          id,
          srcIp: state.srcIp,
          method,
          path: callPath(state),
          args: state.args,
          headers: state.headers,
          token,
        }),
        answerer(state),
      );
    }, () => deps.debug(`${phase}: conf token not found: refresh cache and try again`));
  } catch (error) {
    return failure(phase, conf.allowDegradation, error, deps);
  }
  const answer = decodeReqCallAnswer(payload);
  deps.note(`${phase.slice(11)}: ${answer.action}`);
  if (answer.action === "stop") {
    const headers = new Headers();
    setThenAdd(headers, answer.headers);
    const status = answer.status || 200;
    const body = answer.body?.length ? answer.body : errorPage(status);
    if (body && !answer.body?.length) headers.set("content-type", "text/html");
    for (const [name, value] of state.respHeaders) if (value !== null) headers.append(name, value);
    return new Response(bodyInit(body), { status, headers });
  }
  if (answer.action === "rewrite") applyRewrite(state, answer);
  return null;
}

function failure(
  phase: Phase,
  degrade: boolean,
  error: unknown,
  deps: GatewayDeps,
): Response | null {
  const reason = error instanceof RunnerError ? error.message : String(error);
  if (degrade) {
    deps.note(`${phase.slice(11)}: failed (${reason}), degraded`);
    return null;
  }
  deps.note(`${phase.slice(11)}: failed (${reason})`);
  return plainResponse(503);
}

/** Sends the request upstream; `reached` is false when no upstream answered (a 502). */
async function upstream(state: RequestState): Promise<{ response: Response; reached: boolean }> {
  const target = state.route.upstream;
  if (target === null) {
    return {
      response: plainResponse(502, 'no upstream: give the route an "upstream"\n'),
      reached: false,
    };
  }
  if (target === "echo") return { response: echoUpstream(state), reached: true };
  const base = new URL(target);
  const url = `${base.origin}${base.pathname.replace(/\/$/, "")}${upstreamTarget(state)}`;
  const headers = new Headers();
  for (const [name, value] of state.headers) {
    if (HOP_BY_HOP.has(name)) continue;
    try {
      headers.append(name, value);
    } catch {
      // Refused by fetch: dropped.
    }
  }
  try {
    const response = await fetch(url, {
      method: state.method,
      headers,
      body: state.method === "GET" || state.method === "HEAD" ? null : bodyInit(state.body),
      redirect: "manual",
    });
    return { response, reached: true };
  } catch (error) {
    const reason = `the upstream ${base.origin} failed: ${(error as Error).message}\n`;
    return { response: plainResponse(502, reason), reached: false };
  }
}

function upstreamHeaders(response: Response): Entry[] {
  const entries: Entry[] = [];
  for (const [name, value] of response.headers) {
    if (name !== "set-cookie") entries.push([name, value]);
  }
  for (const cookie of response.headers.getSetCookie()) entries.push(["set-cookie", cookie]);
  return entries;
}

/** ext-plugin-post-resp (§4.5, §5.3). */
async function responsePhase(
  state: RequestState,
  response: Response,
  deps: GatewayDeps,
): Promise<Response> {
  const conf = state.route.plugins["ext-plugin-post-resp"]!;
  state.upstreamStatus = response.status;
  let body: Promise<Uint8Array> | null = null;
  const readBody = () => body ??= response.arrayBuffer().then((b) => new Uint8Array(b));
  const upstreamEntries = upstreamHeaders(response);
  let payload: Uint8Array;
  try {
    payload = await withToken(
      deps.tokens,
      confKey(state.route, "ext-plugin-post-resp"),
      conf.conf,
      (token) => {
        const id = nextId;
        nextId = (nextId + 1) % (1 << 22);
        return deps.client.exchange(
          RpcType.HttpRespCall,
          encodeRespCall({ id, status: response.status, headers: upstreamEntries, token }),
          answerer(state, readBody),
        );
      },
    );
  } catch (error) {
    // APISIX answers 503 with the upstream body and without the upstream's headers; degraded,
    // the upstream status and body, still without its headers (§6.1).
    const degraded = failure("ext-plugin-post-resp", conf.allowDegradation, error, deps) === null;
    return new Response(bodyInit(await readBody()), {
      status: degraded ? response.status : 503,
      headers: { "content-type": "text/plain" },
    });
  }
  const answer = decodeRespCallAnswer(payload);
  const changes = [
    answer.status ? `status ${answer.status}` : "",
    answer.headers.length ? "headers" : "",
    answer.body?.length ? "body" : "",
  ].filter(Boolean);
  deps.note(`post-resp: ${changes.join(" + ") || "none"}`);
  const headers = new Headers();
  if (answer.headers.length) {
    setThenAdd(headers, answer.headers);
  } else {
    setThenAdd(headers, upstreamEntries, IGNORED_RESPONSE_HEADERS);
    headers.set("content-type", "text/plain");
  }
  setThenAdd(headers, state.respHeaders, IGNORED_RESPONSE_HEADERS);
  for (const name of HOP_BY_HOP) headers.delete(name);
  const status = answer.status || response.status;
  if (answer.body?.length) return new Response(bodyInit(answer.body), { status, headers });
  if (body) return new Response(bodyInit(await body), { status, headers });
  return new Response(response.body, { status, headers });
}

/** Runs a request through the route's ext-plugins and its upstream. */
export async function runRoute(state: RequestState, deps: GatewayDeps): Promise<Response> {
  if (state.route.plugins["ext-plugin-pre-req"] || state.route.plugins["ext-plugin-post-req"]) {
    if (!METHODS.includes(state.method as HttpMethod)) {
      // APISIX's builder raises a Lua error for such a method: the client gets a 500.
      deps.note(`method ${state.method} cannot be sent to the runner`);
      return plainResponse(500);
    }
  }
  for (const phase of ["ext-plugin-pre-req", "ext-plugin-post-req"] as const) {
    const ended = await requestPhase(phase, state, deps);
    if (ended) return ended;
  }
  const { response, reached } = await upstream(state);
  // Like APISIX, post-resp runs only on an upstream's answer: a failed request is a plain 502.
  if (!reached) return response;
  if (state.route.plugins["ext-plugin-post-resp"]) return responsePhase(state, response, deps);
  state.upstreamStatus = response.status;
  const headers = new Headers(response.headers);
  for (const name of HOP_BY_HOP) headers.delete(name);
  setThenAdd(headers, state.respHeaders, IGNORED_RESPONSE_HEADERS);
  return new Response(response.body, { status: response.status, headers });
}
