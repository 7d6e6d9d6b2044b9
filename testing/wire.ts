/**
 * The test kit's side of the wire: it builds the `HTTPReqCall` / `HTTPRespCall` payloads APISIX
 * would send for a request or response described in plain values, and decodes the runner's
 * reply frames back into plain values.
 *
 * Header names and values are byte strings (one character per byte), as the plugin API shows
 * them; paths, args and variables are UTF-8 text.
 *
 * @module
 */
import { Builder, ByteBuffer, Encoding } from "flatbuffers";
import { decodeLatin1, encodeLatin1, encodeUtf8, isByteString } from "../api/bytes.ts";
import type { HttpMethod } from "../api/types.ts";
import { METHODS } from "../protocol/apisix_rules.ts";
import { HEADER_SIZE, RpcType } from "../protocol/frame.ts";
import { Action } from "../protocol/gen/action.ts";
import { HttpReqCallReq } from "../protocol/gen/http_req_call_req.ts";
import { HttpReqCallResp } from "../protocol/gen/http_req_call_resp.ts";
import { HttpRespCallReq } from "../protocol/gen/http_resp_call_req.ts";
import { HttpRespCallResp } from "../protocol/gen/http_resp_call_resp.ts";
import { Rewrite } from "../protocol/gen/rewrite.ts";
import { Stop } from "../protocol/gen/stop.ts";
import { TextEntry } from "../protocol/gen/text_entry.ts";

/** A name and a value as bytes; a null value is an absent field. */
export type ByteEntry = readonly [Uint8Array, Uint8Array | null];

/** A text name and value; a null value is an absent field. */
export type TextPair = [string, string | null];

function ipv4(text: string): number[] | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const bytes = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : NaN));
  return bytes.every((b) => b >= 0 && b <= 255) ? bytes : null;
}

/** The 4 or 16 bytes of an IPv4 or IPv6 address, as APISIX sends `$binary_remote_addr`. */
export function parseIp(text: string): Uint8Array {
  const v4 = ipv4(text);
  if (v4) return Uint8Array.from(v4);
  const invalid = () => new TypeError(`Invalid IP address ${JSON.stringify(text)}`);
  if (!text.includes(":")) throw invalid();
  let tail: number[] = [];
  let body = text;
  const lastColon = text.lastIndexOf(":");
  if (text.slice(lastColon + 1).includes(".")) {
    const embedded = ipv4(text.slice(lastColon + 1));
    if (!embedded) throw invalid();
    tail = [(embedded[0]! << 8) | embedded[1]!, (embedded[2]! << 8) | embedded[3]!];
    body = text.slice(0, lastColon + 1) + "0";
  }
  const halves = body.split("::");
  if (halves.length > 2) throw invalid();
  const words = (part: string) =>
    part === "" ? [] : part.split(":").map((w) => {
      if (!/^[0-9a-fA-F]{1,4}$/.test(w)) throw invalid();
      return parseInt(w, 16);
    });
  let head = words(halves[0]!);
  let rest = halves.length === 2 ? words(halves[1]!) : [];
  if (tail.length) {
    // The "0" placeholder stands for the two words of the embedded IPv4 address.
    if (halves.length === 2) rest = [...rest.slice(0, -1), ...tail];
    else head = [...head.slice(0, -1), ...tail];
  }
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) throw invalid();
  const all = [...head, ...new Array(halves.length === 2 ? missing : 0).fill(0), ...rest];
  const bytes = new Uint8Array(16);
  all.forEach((w, i) => {
    bytes[2 * i] = w >> 8;
    bytes[2 * i + 1] = w & 0xff;
  });
  return bytes;
}

function unescapeArg(text: string): string {
  const spaced = text.replace(/\+/g, " ");
  try {
    return decodeURIComponent(spaced);
  } catch {
    // nginx leaves malformed escapes as they are.
    return spaced;
  }
}

/**
 * Splits a query string the way APISIX builds `args` (`ngx.req.get_uri_args`): `+` is a space,
 * escapes are decoded, a key without `=` has no value, `y=` has `""`, empty segments vanish.
 */
export function parseQuery(query: string): TextPair[] {
  const pairs: TextPair[] = [];
  for (const segment of query.replace(/^\?/, "").split("&")) {
    if (segment === "") continue;
    const at = segment.indexOf("=");
    if (at < 0) pairs.push([unescapeArg(segment), null]);
    else pairs.push([unescapeArg(segment.slice(0, at)), unescapeArg(segment.slice(at + 1))]);
  }
  return pairs;
}

/** Bytes of a header name or value given as a byte string. */
export function headerBytes(what: string, text: string): Uint8Array {
  if (!isByteString(text)) {
    throw new TypeError(
      `${what} ${JSON.stringify(text)} is not a byte string: header text has one character per ` +
        "byte (U+0000 to U+00FF); encode other text as UTF-8 bytes first",
    );
  }
  return encodeLatin1(text);
}

function entries(b: Builder, list: readonly ByteEntry[]): number[] {
  return list.map(([name, value]) => {
    const n = b.createString(name);
    const v = value === null ? 0 : b.createString(value);
    TextEntry.startTextEntry(b);
    TextEntry.addName(b, n);
    if (v) TextEntry.addValue(b, v);
    return TextEntry.endTextEntry(b);
  });
}

/** An HTTPReqCall's fields as bytes. */
export interface ReqCallFields {
  id: number;
  srcIp: Uint8Array;
  method: HttpMethod;
  path: string;
  args: readonly TextPair[];
  headers: readonly [string, string][];
  confToken: number;
}

/** Encodes an `HTTPReqCall.Req` payload, leaving default fields out as APISIX's builder does. */
export function encodeReqCall(fields: ReqCallFields): Uint8Array {
  const b = new Builder(512);
  const srcIp = HttpReqCallReq.createSrcIpVector(b, fields.srcIp);
  const path = b.createString(encodeUtf8(fields.path));
  const args = fields.args.length
    ? HttpReqCallReq.createArgsVector(
      b,
      entries(
        b,
        fields.args.map(([n, v]) => [encodeUtf8(n), v === null ? null : encodeUtf8(v)] as const),
      ),
    )
    : 0;
  const headers = fields.headers.length
    ? HttpReqCallReq.createHeadersVector(
      b,
      entries(
        b,
        fields.headers.map(([n, v]) =>
          [headerBytes("The header name", n), headerBytes(`The value of header ${n}`, v)] as const
        ),
      ),
    )
    : 0;
  HttpReqCallReq.startHttpReqCallReq(b);
  if (fields.id) HttpReqCallReq.addId(b, fields.id);
  HttpReqCallReq.addSrcIp(b, srcIp);
  const method = METHODS.indexOf(fields.method);
  if (method < 0) throw new TypeError(`Unknown method ${JSON.stringify(fields.method)}`);
  if (method) HttpReqCallReq.addMethod(b, method);
  HttpReqCallReq.addPath(b, path);
  if (args) HttpReqCallReq.addArgs(b, args);
  if (headers) HttpReqCallReq.addHeaders(b, headers);
  HttpReqCallReq.addConfToken(b, fields.confToken);
  b.finish(HttpReqCallReq.endHttpReqCallReq(b));
  return b.asUint8Array().slice();
}

/** An HTTPRespCall's fields. */
export interface RespCallFields {
  id: number;
  status: number;
  headers: readonly [string, string][];
  confToken: number;
}

/** Encodes an `HTTPRespCall.Req` payload. */
export function encodeRespCall(fields: RespCallFields): Uint8Array {
  const b = new Builder(512);
  const headers = fields.headers.length
    ? HttpRespCallReq.createHeadersVector(
      b,
      entries(
        b,
        fields.headers.map(([n, v]) =>
          [headerBytes("The header name", n), headerBytes(`The value of header ${n}`, v)] as const
        ),
      ),
    )
    : 0;
  HttpRespCallReq.startHttpRespCallReq(b);
  if (fields.id) HttpRespCallReq.addId(b, fields.id);
  if (fields.status) HttpRespCallReq.addStatus(b, fields.status);
  if (headers) HttpRespCallReq.addHeaders(b, headers);
  HttpRespCallReq.addConfToken(b, fields.confToken);
  b.finish(HttpRespCallReq.endHttpRespCallReq(b));
  return b.asUint8Array().slice();
}

function readEntries(
  count: number,
  at: (i: number, e: TextEntry) => TextEntry | null,
): Array<[string, string | null]> {
  const out: Array<[string, string | null]> = [];
  const entry = new TextEntry();
  for (let i = 0; i < count; i++) {
    at(i, entry);
    const name = entry.name(Encoding.UTF8_BYTES) as Uint8Array | null;
    const value = entry.value(Encoding.UTF8_BYTES) as Uint8Array | null;
    out.push([decodeLatin1(name ?? new Uint8Array()), value === null ? null : decodeLatin1(value)]);
  }
  return out;
}

/** A decoded `HTTPReqCall.Resp`; texts are byte strings as they are on the wire. */
export type ReqCallReply =
  | { kind: "none" }
  | {
    kind: "stop";
    status: number;
    headers: Array<[string, string | null]>;
    body: Uint8Array | null;
  }
  | {
    kind: "rewrite";
    path: string | null;
    headers: Array<[string, string | null]>;
    args: Array<[string, string | null]>;
    respHeaders: Array<[string, string | null]>;
    body: Uint8Array | null;
  };

function payloadOf(frame: Uint8Array, type: number): ByteBuffer {
  if (frame[0] !== type) throw new Error(`expected a reply of RPC type ${type}, got ${frame[0]}`);
  return new ByteBuffer(frame.slice(HEADER_SIZE));
}

/** Decodes a complete `HTTPReqCall` reply frame. */
export function decodeReqCallReply(frame: Uint8Array): ReqCallReply {
  const resp = HttpReqCallResp.getRootAsHttpReqCallResp(payloadOf(frame, RpcType.HttpReqCall));
  if (resp.actionType() === Action.Stop) {
    const stop = resp.action(new Stop()) as Stop;
    return {
      kind: "stop",
      status: stop.status(),
      headers: readEntries(stop.headersLength(), (i, e) => stop.headers(i, e)),
      body: stop.bodyArray()?.slice() ?? null,
    };
  }
  if (resp.actionType() === Action.Rewrite) {
    const rw = resp.action(new Rewrite()) as Rewrite;
    const path = rw.path(Encoding.UTF8_BYTES) as Uint8Array | null;
    return {
      kind: "rewrite",
      path: path === null ? null : new TextDecoder().decode(path),
      headers: readEntries(rw.headersLength(), (i, e) => rw.headers(i, e)),
      args: readEntries(rw.argsLength(), (i, e) => rw.args(i, e)).map((
        [n, v],
      ) => [utf8Text(n), v === null ? null : utf8Text(v)]),
      respHeaders: readEntries(rw.respHeadersLength(), (i, e) => rw.respHeaders(i, e)),
      body: rw.bodyArray()?.slice() ?? null,
    };
  }
  return { kind: "none" };
}

/** A decoded `HTTPRespCall` reply; header texts are byte strings. */
export interface RespCallReply {
  status: number;
  headers: Array<[string, string | null]>;
  body: Uint8Array | null;
}

/** Decodes a complete `HTTPRespCall` reply frame. */
export function decodeRespCallReply(frame: Uint8Array): RespCallReply {
  const resp = HttpRespCallResp.getRootAsHttpRespCallResp(payloadOf(frame, RpcType.HttpRespCall));
  return {
    status: resp.status(),
    headers: readEntries(resp.headersLength(), (i, e) => resp.headers(i, e)),
    body: resp.bodyArray()?.slice() ?? null,
  };
}

function utf8Text(byteString: string): string {
  return new TextDecoder().decode(encodeLatin1(byteString));
}
