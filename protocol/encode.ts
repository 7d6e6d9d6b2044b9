/**
 * Encodes the runner's replies to APISIX as complete frames.
 *
 * @module
 */
import * as flatbuffers from "flatbuffers";
import { runSteps, STEP_ENTRIES, type Steps } from "./steps.ts";
import { Action } from "./gen/action.ts";
import { ErrResp } from "./gen/err_resp.ts";
import { ExtraInfoReq } from "./gen/extra_info_req.ts";
import { HttpReqCallResp } from "./gen/http_req_call_resp.ts";
import { HttpRespCallResp } from "./gen/http_resp_call_resp.ts";
import { Info } from "./gen/info.ts";
import { InfoReqBody } from "./gen/info_req_body.ts";
import { InfoRespBody } from "./gen/info_resp_body.ts";
import { InfoVar } from "./gen/info_var.ts";
import { PrepareConfResp } from "./gen/prepare_conf_resp.ts";
import { Rewrite } from "./gen/rewrite.ts";
import { Stop } from "./gen/stop.ts";
import { TextEntry } from "./gen/text_entry.ts";
import { ErrCode, HEADER_SIZE, MAX_PAYLOAD, RpcType, writeHeader } from "./frame.ts";

/** A name and an optional value, as bytes. A null value is sent as an absent field. */
export type WireEntry = readonly [name: Uint8Array, value: Uint8Array | null];

/**
 * A list of entries: an array, or a list that makes each entry when asked (so a long list need
 * not hold an object per entry while the reply is built).
 */
export type WireEntries = readonly WireEntry[] | WireEntryList;

/** A list that makes each entry when asked (see {@linkcode WireEntries}). */
export interface WireEntryList {
  /** How many entries. */
  readonly length: number;
  /** Entry `i` (0 ≤ i < length). */
  at(i: number): WireEntry | undefined;
}

/** What an HTTPReqCall is answered with. */
export type ReqCallAction =
  | { kind: "none" }
  | {
    kind: "stop";
    status: number;
    headers: WireEntries;
    body: Uint8Array | null;
  }
  | {
    kind: "rewrite";
    path: Uint8Array | null;
    headers: WireEntries;
    args: WireEntries;
    respHeaders: WireEntries;
    body: Uint8Array | null;
  };

/** Thrown when a reply would not fit in a frame; the caller answers with an error instead. */
export class OversizeReplyError extends RangeError {
  constructor(readonly size: number) {
    super(`reply of ${size} bytes exceeds the protocol limit of ${MAX_PAYLOAD} bytes`);
    this.name = "OversizeReplyError";
  }
}

function errorFrame(code: ErrCode): Uint8Array {
  const builder = new flatbuffers.Builder(16);
  builder.finish(ErrResp.createErrResp(builder, code));
  const payload = builder.asUint8Array();
  const frame = new Uint8Array(HEADER_SIZE + payload.length);
  writeHeader(frame, 0, RpcType.Error, payload.length);
  frame.set(payload, HEADER_SIZE);
  return frame;
}

/** Pre-encoded error frames, one per code (always RPC type 0, PROTOCOL.md §6.1). */
export const ERROR_FRAMES: Readonly<Record<ErrCode, Uint8Array>> = {
  [ErrCode.BadRequest]: errorFrame(ErrCode.BadRequest),
  [ErrCode.ServiceUnavailable]: errorFrame(ErrCode.ServiceUnavailable),
  [ErrCode.ConfTokenNotFound]: errorFrame(ErrCode.ConfTokenNotFound),
};

// Builders that grew past this are dropped after use so one huge body does not pin memory.
const KEEP_BUILDER_BELOW = 1 << 20;

/**
 * Builds reply frames with one reused FlatBuffers builder. A returned frame is a view into the
 * builder and stays valid only until the next call: write it before encoding the next reply.
 */
export class FrameEncoder {
  #builder = new flatbuffers.Builder(1024);

  *#entries(entries: WireEntries): Steps<number[]> {
    const offsets: number[] = [];
    for (let at = 0; at < entries.length; at += STEP_ENTRIES) {
      this.#entriesNow(entries, at, Math.min(entries.length, at + STEP_ENTRIES), offsets);
      yield;
    }
    return offsets;
  }

  // A short list goes at once (callers check): a nested generator costs more than a few entries.
  #entriesNow(
    entries: WireEntries,
    from: number,
    to: number,
    offsets: number[],
  ): number[] {
    const b = this.#builder;
    for (let i = from; i < to; i++) {
      const [name, value] = entries.at(i)!;
      const nameOffset = b.createString(name);
      const valueOffset = value === null ? 0 : b.createString(value);
      TextEntry.startTextEntry(b);
      TextEntry.addName(b, nameOffset);
      if (valueOffset) TextEntry.addValue(b, valueOffset);
      offsets[i] = TextEntry.endTextEntry(b);
    }
    return offsets;
  }

  /** Finishes `root` and returns it framed under `type`, or throws OversizeReplyError. */
  #frame(type: number, root: number): Uint8Array {
    const b = this.#builder;
    b.finish(root);
    const data = b.dataBuffer();
    const start = data.position();
    const bytes = data.bytes();
    const length = bytes.length - start;
    if (length > MAX_PAYLOAD) {
      this.#builder = new flatbuffers.Builder(1024);
      throw new OversizeReplyError(length);
    }
    let frame: Uint8Array;
    if (start >= HEADER_SIZE) {
      // The builder fills its buffer from the end: write the header in front, no copy.
      writeHeader(bytes, start - HEADER_SIZE, type, length);
      frame = bytes.subarray(start - HEADER_SIZE);
    } else {
      frame = new Uint8Array(HEADER_SIZE + length);
      writeHeader(frame, 0, type, length);
      frame.set(bytes.subarray(start), HEADER_SIZE);
    }
    if (bytes.length > KEEP_BUILDER_BELOW) this.#builder = new flatbuffers.Builder(1024);
    else b.clear();
    return frame;
  }

  /** `PrepareConfResp { conf_token }`. */
  prepareConf(token: number): Uint8Array {
    const b = this.#builder;
    return this.#frame(RpcType.PrepareConf, PrepareConfResp.createPrepareConfResp(b, token));
  }

  /** `ExtraInfoReq` asking for a variable, the request body or the response body. */
  extraInfo(info: "var" | "reqBody" | "respBody", name?: Uint8Array): Uint8Array {
    const b = this.#builder;
    let type: Info;
    let table: number;
    if (info === "var") {
      const nameOffset = b.createString(name ?? new Uint8Array());
      table = InfoVar.createInfoVar(b, nameOffset);
      type = Info.InfoVar;
    } else if (info === "reqBody") {
      InfoReqBody.startInfoReqBody(b);
      table = InfoReqBody.endInfoReqBody(b);
      type = Info.InfoReqBody;
    } else {
      InfoRespBody.startInfoRespBody(b);
      table = InfoRespBody.endInfoRespBody(b);
      type = Info.InfoRespBody;
    }
    return this.#frame(RpcType.ExtraInfo, ExtraInfoReq.createExtraInfoReq(b, type, table));
  }

  // Fields are added largest first and, within a size, in reverse declaration order, as flatc's
  // C++ Create* functions do, so replies match upstream's fixtures byte for byte.

  /** `HttpReqCallResp { id, action }`. */
  reqCall(id: number, action: ReqCallAction): Uint8Array {
    return runSteps(this.reqCallSteps(id, action));
  }

  /** {@linkcode reqCall} in pieces (see `runner/sandboxes/slicer.ts`); the builder is this call's. */
  *reqCallSteps(id: number, action: ReqCallAction): Steps<Uint8Array> {
    const b = this.#builder;
    let type: Action = Action.NONE;
    let table = 0;
    if (action.kind === "stop") {
      const headers = action.headers.length
        ? Stop.createHeadersVector(
          b,
          action.headers.length < STEP_ENTRIES
            ? this.#entriesNow(action.headers, 0, action.headers.length, [])
            : yield* this.#entries(action.headers),
        )
        : 0;
      const body = action.body?.length ? b.createByteVector(action.body) : 0;
      Stop.startStop(b);
      if (body) Stop.addBody(b, body);
      if (headers) Stop.addHeaders(b, headers);
      if (action.status) Stop.addStatus(b, action.status);
      table = Stop.endStop(b);
      type = Action.Stop;
    } else if (action.kind === "rewrite") {
      const path = action.path ? b.createString(action.path) : 0;
      const headers = action.headers.length
        ? Rewrite.createHeadersVector(
          b,
          action.headers.length < STEP_ENTRIES
            ? this.#entriesNow(action.headers, 0, action.headers.length, [])
            : yield* this.#entries(action.headers),
        )
        : 0;
      const args = action.args.length
        ? Rewrite.createArgsVector(
          b,
          action.args.length < STEP_ENTRIES
            ? this.#entriesNow(action.args, 0, action.args.length, [])
            : yield* this.#entries(action.args),
        )
        : 0;
      const respHeaders = action.respHeaders.length
        ? Rewrite.createRespHeadersVector(
          b,
          action.respHeaders.length < STEP_ENTRIES
            ? this.#entriesNow(action.respHeaders, 0, action.respHeaders.length, [])
            : yield* this.#entries(action.respHeaders),
        )
        : 0;
      const body = action.body?.length ? b.createByteVector(action.body) : 0;
      Rewrite.startRewrite(b);
      if (body) Rewrite.addBody(b, body);
      if (respHeaders) Rewrite.addRespHeaders(b, respHeaders);
      if (args) Rewrite.addArgs(b, args);
      if (headers) Rewrite.addHeaders(b, headers);
      if (path) Rewrite.addPath(b, path);
      table = Rewrite.endRewrite(b);
      type = Action.Rewrite;
    }
    HttpReqCallResp.startHttpReqCallResp(b);
    if (type !== Action.NONE) HttpReqCallResp.addAction(b, table);
    if (id) HttpReqCallResp.addId(b, id);
    if (type !== Action.NONE) HttpReqCallResp.addActionType(b, type);
    return this.#frame(RpcType.HttpReqCall, HttpReqCallResp.endHttpReqCallResp(b));
  }

  /** `HttpRespCallResp { id, status, headers, body }`. */
  respCall(
    id: number,
    status: number,
    headers: WireEntries,
    body: Uint8Array | null,
  ): Uint8Array {
    return runSteps(this.respCallSteps(id, status, headers, body));
  }

  /** {@linkcode respCall} in pieces (see `runner/sandboxes/slicer.ts`); the builder is this call's. */
  *respCallSteps(
    id: number,
    status: number,
    headers: WireEntries,
    body: Uint8Array | null,
  ): Steps<Uint8Array> {
    const b = this.#builder;
    const headerVector = headers.length
      ? HttpRespCallResp.createHeadersVector(
        b,
        headers.length < STEP_ENTRIES
          ? this.#entriesNow(headers, 0, headers.length, [])
          : yield* this.#entries(headers),
      )
      : 0;
    const bodyVector = body?.length ? b.createByteVector(body) : 0;
    HttpRespCallResp.startHttpRespCallResp(b);
    if (bodyVector) HttpRespCallResp.addBody(b, bodyVector);
    if (headerVector) HttpRespCallResp.addHeaders(b, headerVector);
    if (id) HttpRespCallResp.addId(b, id);
    if (status) HttpRespCallResp.addStatus(b, status);
    return this.#frame(RpcType.HttpRespCall, HttpRespCallResp.endHttpRespCallResp(b));
  }
}
