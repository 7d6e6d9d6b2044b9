/**
 * Turns a chain's merged patch into the reply APISIX applies (PROTOCOL.md §5).
 *
 * @module
 */
import { decodeLatin1, encodeLatin1 } from "./bytes.ts";
import type { Patch } from "./patch.ts";
import { runSteps, STEP_ENTRIES, type Steps } from "../protocol/steps.ts";
import { isHopByHopOrLength } from "../protocol/apisix_rules.ts";
import type { ReqCallAction, WireEntry } from "../protocol/encode.ts";
import type { HttpRespCallReq } from "../protocol/gen/http_resp_call_req.ts";
import { TextEntry } from "../protocol/gen/text_entry.ts";
import { Encoding } from "flatbuffers";

const COMMA = encodeLatin1(", ");
const EMPTY = new Uint8Array();

function join(values: Uint8Array[]): Uint8Array {
  if (values.length === 1) return values[0]!;
  const size = values.reduce((n, v) => n + v.length, 0) + COMMA.length * (values.length - 1);
  const out = new Uint8Array(size);
  let at = 0;
  values.forEach((value, i) => {
    if (i > 0) {
      out.set(COMMA, at);
      at += COMMA.length;
    }
    out.set(value, at);
    at += value.length;
  });
  return out;
}

/** The HTTPReqCall action for a merged patch (`null`: no plugin changed anything). */
export function requestAction(patch: Patch | null): ReqCallAction {
  return runSteps(requestActionSteps(patch));
}

/** {@linkcode requestAction} in pieces (see `slicer.ts`). */
export function* requestActionSteps(patch: Patch | null): Steps<ReqCallAction> {
  if (!patch) return { kind: "none" };
  let step = 0;
  if (patch.stop) {
    return {
      kind: "stop",
      status: patch.status || 200,
      headers: patch.responseHeaders ?? [],
      body: patch.responseBody,
    };
  }
  const headers: WireEntry[] = [];
  for (const [name, values] of patch.headers ?? []) {
    // APISIX sets request headers (a repeated name would overwrite): one entry per name, the
    // values joined; no value deletes.
    headers.push([encodeLatin1(name), values.length ? join(values) : null]);
    step += values.length + 1;
    if (step >= STEP_ENTRIES) {
      step = 0;
      yield;
    }
  }
  const args: WireEntry[] = [];
  for (const [name, values] of patch.args ?? []) {
    const key = encodeLatin1(name);
    // APISIX replaces a name's values with the first entry and appends the rest; no value
    // deletes, so a value-less arg kept beside a change goes as an empty value.
    if (values.length === 0) args.push([key, null]);
    for (const value of values) args.push([key, value ?? EMPTY]);
    step += values.length + 1;
    if (step >= STEP_ENTRIES) {
      step = 0;
      yield;
    }
  }
  const respHeaders = patch.responseHeaders ?? [];
  if (
    !patch.path && !headers.length && !args.length && !respHeaders.length && !patch.requestBody
  ) {
    return { kind: "none" };
  }
  return {
    kind: "rewrite",
    path: patch.path,
    headers,
    args,
    respHeaders,
    body: patch.requestBody,
  };
}

/** Header names a response-phase reply never carries (hop-by-hop, and a stale length). */
export function isDroppedResponseHeader(name: string): boolean {
  return isHopByHopOrLength(name.toLowerCase());
}

/**
 * The complete header list of an HTTPRespCall reply: the upstream's headers with the plugins'
 * changes (a changed name's entries are replaced by its new values, which go last), without
 * hop-by-hop headers and Content-Length, so APISIX keeps Content-Type and friends
 * (PROTOCOL.md §5.3).
 */
export function responseHeaders(patch: Patch | null, req: HttpRespCallReq): WireEntry[] {
  return runSteps(responseHeadersSteps(patch, req));
}

/** {@linkcode responseHeaders} in pieces (see `slicer.ts`). */
export function* responseHeadersSteps(
  patch: Patch | null,
  req: HttpRespCallReq,
): Steps<WireEntry[]> {
  const out: WireEntry[] = [];
  let step = 0;
  const changed = patch?.headers ?? null;
  const entry = new TextEntry();
  for (let i = 0; i < req.headersLength(); i++) {
    if (i % STEP_ENTRIES === STEP_ENTRIES - 1) yield;
    req.headers(i, entry);
    const name = entry.name(Encoding.UTF8_BYTES) as Uint8Array | null;
    if (!name) continue;
    const text = decodeLatin1(name).toLowerCase();
    if (isHopByHopOrLength(text) || changed?.has(text)) continue;
    out.push([name, (entry.value(Encoding.UTF8_BYTES) as Uint8Array | null) ?? EMPTY]);
  }
  for (const [name, values] of changed ?? []) {
    if (isHopByHopOrLength(name)) continue;
    const key = encodeLatin1(name);
    for (const value of values) out.push([key, value]);
    step += values.length + 1;
    if (step >= STEP_ENTRIES) {
      step = 0;
      yield;
    }
  }
  return out;
}
