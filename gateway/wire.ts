/**
 * The APISIX side of the ext-plugin protocol, for the local gateway: it encodes what APISIX
 * sends (PrepareConf, HTTPReqCall, HTTPRespCall, ExtraInfo answers) and decodes what a runner
 * answers. Text travels as bytes: header names and values, paths and args are Latin-1 "byte
 * strings" here (one character per byte), so any byte round-trips unchanged.
 *
 * @module
 */
import * as flatbuffers from "flatbuffers";
import { Action } from "../protocol/gen/action.ts";
import { ErrResp } from "../protocol/gen/err_resp.ts";
import { ExtraInfoReq } from "../protocol/gen/extra_info_req.ts";
import { ExtraInfoResp } from "../protocol/gen/extra_info_resp.ts";
import { HttpReqCallReq } from "../protocol/gen/http_req_call_req.ts";
import { HttpReqCallResp } from "../protocol/gen/http_req_call_resp.ts";
import { HttpRespCallReq } from "../protocol/gen/http_resp_call_req.ts";
import { HttpRespCallResp } from "../protocol/gen/http_resp_call_resp.ts";
import { Info } from "../protocol/gen/info.ts";
import { InfoVar } from "../protocol/gen/info_var.ts";
import { PrepareConfReq } from "../protocol/gen/prepare_conf_req.ts";
import { PrepareConfResp } from "../protocol/gen/prepare_conf_resp.ts";
import { Rewrite } from "../protocol/gen/rewrite.ts";
import { Stop } from "../protocol/gen/stop.ts";
import { TextEntry } from "../protocol/gen/text_entry.ts";
import { decodeLatin1, encodeLatin1, encodeUtf8 } from "../api/bytes.ts";
export { METHODS } from "../protocol/apisix_rules.ts";

/** A name and value; a null value is an absent field (a deleted header, a flag arg). */
export type Entry = [name: string, value: string | null];

function entries(b: flatbuffers.Builder, list: readonly Entry[]): number[] {
  return list.map(([name, value]) => {
    const n = b.createString(encodeLatin1(name));
    const v = value === null ? 0 : b.createString(encodeLatin1(value));
    TextEntry.startTextEntry(b);
    TextEntry.addName(b, n);
    if (v) TextEntry.addValue(b, v);
    return TextEntry.endTextEntry(b);
  });
}

/** PrepareConf: the route's conf list (plugin name → conf string, UTF-8) and its key. */
export function encodePrepareConf(conf: ReadonlyArray<[string, string]> | null, key: string) {
  const b = new flatbuffers.Builder(256);
  const list = conf?.length
    ? PrepareConfReq.createConfVector(
      b,
      conf.map(([name, value]) => {
        const n = b.createString(encodeUtf8(name));
        const v = b.createString(encodeUtf8(value));
        TextEntry.startTextEntry(b);
        TextEntry.addName(b, n);
        TextEntry.addValue(b, v);
        return TextEntry.endTextEntry(b);
      }),
    )
    : 0;
  const k = b.createString(key);
  PrepareConfReq.startPrepareConfReq(b);
  if (list) PrepareConfReq.addConf(b, list);
  PrepareConfReq.addKey(b, k);
  b.finish(PrepareConfReq.endPrepareConfReq(b));
  return b.asUint8Array();
}

/** An HTTPReqCall as APISIX builds it (§4.3). */
export interface ReqCall {
  id: number;
  srcIp: Uint8Array;
  method: number;
  path: string;
  args: readonly Entry[];
  headers: readonly Entry[];
  token: number;
}

/** HTTPReqCall; default scalars are left out, as APISIX's builder does. */
export function encodeReqCall(call: ReqCall): Uint8Array {
  const b = new flatbuffers.Builder(1024);
  const srcIp = HttpReqCallReq.createSrcIpVector(b, call.srcIp);
  const path = b.createString(encodeLatin1(call.path));
  const args = HttpReqCallReq.createArgsVector(b, entries(b, call.args));
  const headers = HttpReqCallReq.createHeadersVector(b, entries(b, call.headers));
  HttpReqCallReq.startHttpReqCallReq(b);
  if (call.id) HttpReqCallReq.addId(b, call.id);
  HttpReqCallReq.addSrcIp(b, srcIp);
  if (call.method) HttpReqCallReq.addMethod(b, call.method);
  HttpReqCallReq.addPath(b, path);
  HttpReqCallReq.addArgs(b, args);
  HttpReqCallReq.addHeaders(b, headers);
  HttpReqCallReq.addConfToken(b, call.token);
  b.finish(HttpReqCallReq.endHttpReqCallReq(b));
  return b.asUint8Array();
}

/** HTTPRespCall: the upstream's status and headers (§4.5). */
export function encodeRespCall(
  call: { id: number; status: number; headers: readonly Entry[]; token: number },
): Uint8Array {
  const b = new flatbuffers.Builder(1024);
  const headers = HttpRespCallReq.createHeadersVector(b, entries(b, call.headers));
  HttpRespCallReq.startHttpRespCallReq(b);
  if (call.id) HttpRespCallReq.addId(b, call.id);
  if (call.status) HttpRespCallReq.addStatus(b, call.status);
  HttpRespCallReq.addHeaders(b, headers);
  HttpRespCallReq.addConfToken(b, call.token);
  b.finish(HttpRespCallReq.endHttpRespCallReq(b));
  return b.asUint8Array();
}

/** An ExtraInfo answer; null leaves `result` out (APISIX's nil). */
export function encodeExtraInfoAnswer(result: Uint8Array | null): Uint8Array {
  const b = new flatbuffers.Builder(256 + (result?.length ?? 0));
  const vector = result === null ? 0 : b.createByteVector(result);
  ExtraInfoResp.startExtraInfoResp(b);
  if (result !== null) ExtraInfoResp.addResult(b, vector);
  b.finish(ExtraInfoResp.endExtraInfoResp(b));
  return b.asUint8Array();
}

/** A runner's ExtraInfo question. */
export type Question =
  | { info: "var"; name: string }
  | { info: "reqBody" }
  | { info: "respBody" }
  | { info: "unknown"; type: number };

/** Decodes an ExtraInfo question. */
export function decodeQuestion(payload: Uint8Array): Question {
  const req = ExtraInfoReq.getRootAsExtraInfoReq(new flatbuffers.ByteBuffer(payload));
  switch (req.infoType()) {
    case Info.InfoVar:
      return { info: "var", name: (req.info(new InfoVar()) as InfoVar).name() ?? "" };
    case Info.InfoReqBody:
      return { info: "reqBody" };
    case Info.InfoRespBody:
      return { info: "respBody" };
    default:
      return { info: "unknown", type: req.infoType() };
  }
}

function readEntries(count: number, at: (i: number, e: TextEntry) => TextEntry | null): Entry[] {
  const out: Entry[] = [];
  for (let i = 0; i < count; i++) {
    const e = at(i, new TextEntry())!;
    const name = e.name(flatbuffers.Encoding.UTF8_BYTES) as Uint8Array | null;
    const value = e.value(flatbuffers.Encoding.UTF8_BYTES) as Uint8Array | null;
    out.push([decodeLatin1(name ?? new Uint8Array()), value === null ? null : decodeLatin1(value)]);
  }
  return out;
}

/** What a runner answered to an HTTPReqCall. */
export type ReqCallAnswer =
  | { action: "none" }
  | { action: "stop"; status: number; headers: Entry[]; body: Uint8Array | null }
  | {
    action: "rewrite";
    path: string | null;
    headers: Entry[];
    args: Entry[];
    respHeaders: Entry[];
    body: Uint8Array | null;
  };

/** Decodes an HTTPReqCall reply. */
export function decodeReqCallAnswer(payload: Uint8Array): ReqCallAnswer {
  const resp = HttpReqCallResp.getRootAsHttpReqCallResp(new flatbuffers.ByteBuffer(payload));
  if (resp.actionType() === Action.Stop) {
    const stop = resp.action(new Stop()) as Stop;
    return {
      action: "stop",
      status: stop.status(),
      headers: readEntries(stop.headersLength(), (i, e) => stop.headers(i, e)),
      body: stop.bodyArray()?.slice() ?? null,
    };
  }
  if (resp.actionType() === Action.Rewrite) {
    const rw = resp.action(new Rewrite()) as Rewrite;
    const path = rw.path(flatbuffers.Encoding.UTF8_BYTES) as Uint8Array | null;
    return {
      action: "rewrite",
      path: path === null ? null : decodeLatin1(path),
      headers: readEntries(rw.headersLength(), (i, e) => rw.headers(i, e)),
      args: readEntries(rw.argsLength(), (i, e) => rw.args(i, e)),
      respHeaders: readEntries(rw.respHeadersLength(), (i, e) => rw.respHeaders(i, e)),
      body: rw.bodyArray()?.slice() ?? null,
    };
  }
  return { action: "none" };
}

/** What a runner answered to an HTTPRespCall. */
export interface RespCallAnswer {
  status: number;
  headers: Entry[];
  body: Uint8Array | null;
}

/** Decodes an HTTPRespCall reply. */
export function decodeRespCallAnswer(payload: Uint8Array): RespCallAnswer {
  const resp = HttpRespCallResp.getRootAsHttpRespCallResp(new flatbuffers.ByteBuffer(payload));
  return {
    status: resp.status(),
    headers: readEntries(resp.headersLength(), (i, e) => resp.headers(i, e)),
    body: resp.bodyArray()?.slice() ?? null,
  };
}

/** Decodes a PrepareConf reply's token. */
export function decodeToken(payload: Uint8Array): number {
  return PrepareConfResp.getRootAsPrepareConfResp(new flatbuffers.ByteBuffer(payload)).confToken();
}

/** Decodes an error frame's code (0 bad request, 1 service unavailable, 2 token not found). */
export function decodeErrorCode(payload: Uint8Array): number {
  return ErrResp.getRootAsErrResp(new flatbuffers.ByteBuffer(payload)).code();
}
