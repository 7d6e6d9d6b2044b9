/**
 * An APISIX-like client for tests: it frames, encodes and decodes the ext-plugin protocol the
 * way APISIX does, over the runner's real Unix socket, and answers ExtraInfo questions.
 *
 * Text in requests and replies is handled as Latin-1 byte strings (one character per byte),
 * so tests can send and check bytes that are not UTF-8.
 *
 * @module
 */
import * as flatbuffers from "flatbuffers";
import { Action } from "../../protocol/gen/action.ts";
import { ErrResp } from "../../protocol/gen/err_resp.ts";
import { ExtraInfoReq } from "../../protocol/gen/extra_info_req.ts";
import { ExtraInfoResp } from "../../protocol/gen/extra_info_resp.ts";
import { HttpReqCallReq } from "../../protocol/gen/http_req_call_req.ts";
import { HttpReqCallResp } from "../../protocol/gen/http_req_call_resp.ts";
import { HttpRespCallReq } from "../../protocol/gen/http_resp_call_req.ts";
import { HttpRespCallResp } from "../../protocol/gen/http_resp_call_resp.ts";
import { Info } from "../../protocol/gen/info.ts";
import { InfoVar } from "../../protocol/gen/info_var.ts";
import { PrepareConfReq } from "../../protocol/gen/prepare_conf_req.ts";
import { PrepareConfResp } from "../../protocol/gen/prepare_conf_resp.ts";
import { Rewrite } from "../../protocol/gen/rewrite.ts";
import { Stop } from "../../protocol/gen/stop.ts";
import { TextEntry } from "../../protocol/gen/text_entry.ts";

/** RPC types. */
export const RPC = { Error: 0, PrepareConf: 1, HttpReqCall: 2, ExtraInfo: 3, HttpRespCall: 4 };

/** Bytes of a Latin-1 string (every char must be ≤ U+00FF). */
export function bytes(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

/** A Latin-1 string of bytes. */
export function latin1(data: Uint8Array): string {
  return String.fromCharCode(...data);
}

/** A name/value pair; a null value is an absent field. */
export type Entry = readonly [string, string | null];

/** One frame. */
export interface Frame {
  type: number;
  payload: Uint8Array;
}

function entries(b: flatbuffers.Builder, list: readonly Entry[]): number[] {
  return list.map(([name, value]) => {
    const n = b.createString(bytes(name));
    const v = value === null ? 0 : b.createString(bytes(value));
    TextEntry.startTextEntry(b);
    TextEntry.addName(b, n);
    if (v) TextEntry.addValue(b, v);
    return TextEntry.endTextEntry(b);
  });
}

/** Encodes `PrepareConfReq`. `conf` null leaves the vector out. */
export function encodePrepareConf(conf: readonly Entry[] | null, key?: string): Uint8Array {
  const b = new flatbuffers.Builder(256);
  const confVector = conf ? PrepareConfReq.createConfVector(b, entries(b, conf)) : 0;
  const keyOffset = key === undefined ? 0 : b.createString(key);
  PrepareConfReq.startPrepareConfReq(b);
  if (confVector) PrepareConfReq.addConf(b, confVector);
  if (keyOffset) PrepareConfReq.addKey(b, keyOffset);
  b.finish(PrepareConfReq.endPrepareConfReq(b));
  return b.asUint8Array();
}

/** An HTTPReqCall as a test describes it. */
export interface ReqCall {
  id?: number;
  srcIp?: number[];
  /** Method enum value (GET 0 … TRACE 14). */
  method?: number;
  path?: string;
  args?: readonly Entry[];
  headers?: readonly Entry[];
  token: number;
}

/** Encodes `HttpReqCallReq`; default fields are left out, as APISIX's builder does. */
export function encodeReqCall(call: ReqCall): Uint8Array {
  const b = new flatbuffers.Builder(512);
  const srcIp = call.srcIp ? HttpReqCallReq.createSrcIpVector(b, call.srcIp) : 0;
  const path = call.path === undefined ? 0 : b.createString(bytes(call.path));
  const args = call.args ? HttpReqCallReq.createArgsVector(b, entries(b, call.args)) : 0;
  const headers = call.headers
    ? HttpReqCallReq.createHeadersVector(b, entries(b, call.headers))
    : 0;
  HttpReqCallReq.startHttpReqCallReq(b);
  if (call.id) HttpReqCallReq.addId(b, call.id);
  if (srcIp) HttpReqCallReq.addSrcIp(b, srcIp);
  if (call.method) HttpReqCallReq.addMethod(b, call.method);
  if (path) HttpReqCallReq.addPath(b, path);
  if (args) HttpReqCallReq.addArgs(b, args);
  if (headers) HttpReqCallReq.addHeaders(b, headers);
  HttpReqCallReq.addConfToken(b, call.token);
  b.finish(HttpReqCallReq.endHttpReqCallReq(b));
  return b.asUint8Array();
}

/** An HTTPRespCall as a test describes it. */
export interface RespCall {
  id?: number;
  status?: number;
  headers?: readonly Entry[];
  token: number;
}

/** Encodes `HttpRespCallReq`. */
export function encodeRespCall(call: RespCall): Uint8Array {
  const b = new flatbuffers.Builder(512);
  const headers = call.headers
    ? HttpRespCallReq.createHeadersVector(b, entries(b, call.headers))
    : 0;
  HttpRespCallReq.startHttpRespCallReq(b);
  if (call.id) HttpRespCallReq.addId(b, call.id);
  if (call.status) HttpRespCallReq.addStatus(b, call.status);
  if (headers) HttpRespCallReq.addHeaders(b, headers);
  HttpRespCallReq.addConfToken(b, call.token);
  b.finish(HttpRespCallReq.endHttpRespCallReq(b));
  return b.asUint8Array();
}

/** Encodes `ExtraInfoResp`; null leaves `result` out (APISIX's "nil"). */
export function encodeExtraInfoResp(result: Uint8Array | string | null): Uint8Array {
  const b = new flatbuffers.Builder(256);
  const vector = result === null
    ? 0
    : b.createByteVector(typeof result === "string" ? new TextEncoder().encode(result) : result);
  ExtraInfoResp.startExtraInfoResp(b);
  if (result !== null) ExtraInfoResp.addResult(b, vector);
  b.finish(ExtraInfoResp.endExtraInfoResp(b));
  return b.asUint8Array();
}

/** A frame's bytes. */
export function frame(type: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  out[0] = type;
  out[1] = payload.length >>> 16;
  out[2] = (payload.length >>> 8) & 0xff;
  out[3] = payload.length & 0xff;
  out.set(payload, 4);
  return out;
}

/** An ExtraInfo question the runner asked. */
export type Ask =
  | { kind: "var"; name: string }
  | { kind: "reqBody" }
  | { kind: "respBody" };

/** A decoded reply. */
export type Reply =
  | { rpc: 0; code: number }
  | { rpc: 1; token: number }
  | { rpc: 2; id: number; action: "none" }
  | {
    rpc: 2;
    id: number;
    action: "stop";
    status: number;
    headers: Entry[];
    body: Uint8Array | null;
  }
  | {
    rpc: 2;
    id: number;
    action: "rewrite";
    path: string | null;
    headers: Entry[];
    args: Entry[];
    respHeaders: Entry[];
    body: Uint8Array | null;
  }
  | { rpc: 4; id: number; status: number; headers: Entry[]; body: Uint8Array | null };

function readEntries(count: number, at: (i: number, e: TextEntry) => TextEntry | null): Entry[] {
  const out: Entry[] = [];
  for (let i = 0; i < count; i++) {
    const e = at(i, new TextEntry())!;
    const name = e.name(flatbuffers.Encoding.UTF8_BYTES) as Uint8Array;
    const value = e.value(flatbuffers.Encoding.UTF8_BYTES) as Uint8Array | null;
    out.push([latin1(name), value === null ? null : latin1(value)]);
  }
  return out;
}

/** Decodes a reply frame. */
export function decodeReply(f: Frame): Reply {
  const bb = new flatbuffers.ByteBuffer(f.payload);
  switch (f.type) {
    case 0:
      return { rpc: 0, code: ErrResp.getRootAsErrResp(bb).code() };
    case 1:
      return { rpc: 1, token: PrepareConfResp.getRootAsPrepareConfResp(bb).confToken() };
    case 2: {
      const resp = HttpReqCallResp.getRootAsHttpReqCallResp(bb);
      const id = resp.id();
      if (resp.actionType() === Action.Stop) {
        const stop = resp.action(new Stop()) as Stop;
        return {
          rpc: 2,
          id,
          action: "stop",
          status: stop.status(),
          headers: readEntries(stop.headersLength(), (i, e) => stop.headers(i, e)),
          body: stop.bodyArray(),
        };
      }
      if (resp.actionType() === Action.Rewrite) {
        const rw = resp.action(new Rewrite()) as Rewrite;
        const path = rw.path(flatbuffers.Encoding.UTF8_BYTES) as Uint8Array | null;
        return {
          rpc: 2,
          id,
          action: "rewrite",
          path: path === null ? null : latin1(path),
          headers: readEntries(rw.headersLength(), (i, e) => rw.headers(i, e)),
          args: readEntries(rw.argsLength(), (i, e) => rw.args(i, e)),
          respHeaders: readEntries(rw.respHeadersLength(), (i, e) => rw.respHeaders(i, e)),
          body: rw.bodyArray(),
        };
      }
      return { rpc: 2, id, action: "none" };
    }
    case 4: {
      const resp = HttpRespCallResp.getRootAsHttpRespCallResp(bb);
      return {
        rpc: 4,
        id: resp.id(),
        status: resp.status(),
        headers: readEntries(resp.headersLength(), (i, e) => resp.headers(i, e)),
        body: resp.bodyArray(),
      };
    }
    default:
      throw new Error(`unexpected reply type ${f.type}`);
  }
}

/** Decodes the runner's ExtraInfo question. */
export function decodeAsk(payload: Uint8Array): Ask {
  const req = ExtraInfoReq.getRootAsExtraInfoReq(new flatbuffers.ByteBuffer(payload));
  switch (req.infoType()) {
    case Info.InfoVar:
      return { kind: "var", name: (req.info(new InfoVar()) as InfoVar).name() ?? "" };
    case Info.InfoReqBody:
      return { kind: "reqBody" };
    case Info.InfoRespBody:
      return { kind: "respBody" };
    default:
      throw new Error(`unknown info type ${req.infoType()}`);
  }
}

/** How a test answers ExtraInfo questions. */
export type Answerer = (ask: Ask) => Uint8Array | string | null;

/** Thrown when the runner sends nothing within a read's timeout. */
export class ReadTimeout extends Error {
  constructor(ms: number) {
    super(`no data from the runner within ${ms} ms`);
    this.name = "ReadTimeout";
  }
}

/** Answers every question with "absent". */
export const answerNothing: Answerer = () => null;

/** One connection to the runner. */
export class ApisixConn {
  #conn: Deno.Conn;
  // Received bytes not yet returned as frames: #store[#start, #end), grown by doubling so that
  // a large reply arriving in many reads is not copied once per read.
  #store = new Uint8Array(1 << 16);
  #start = 0;
  #end = 0;
  #closed = false;
  /** The type and length field of every frame read so far, in order. */
  readonly received: Array<{ type: number; length: number }> = [];

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Connects to the runner's socket. */
  static async connect(path: string): Promise<ApisixConn> {
    return new ApisixConn(await Deno.connect({ transport: "unix", path }));
  }

  /** Writes raw bytes. */
  async write(data: Uint8Array): Promise<void> {
    let written = 0;
    while (written < data.length) written += await this.#conn.write(data.subarray(written));
  }

  /** Writes one frame. */
  send(type: number, payload: Uint8Array): Promise<void> {
    return this.write(frame(type, payload));
  }

  // A read that outlived its caller's timeout stays pending and is awaited by the next fill, so
  // no bytes are lost to an abandoned read.
  #pending: Promise<number | null> | null = null;
  #chunk = new Uint8Array(1 << 20);

  async #fill(timeoutMs: number): Promise<boolean> {
    if (!this.#pending) {
      this.#pending = this.#conn.read(this.#chunk);
      // A read still pending when the connection is closed fails; nobody may be waiting.
      this.#pending.catch(() => {});
    }
    const pending = this.#pending;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    try {
      const n = await Promise.race([pending, timeout]);
      if (n === "timeout") throw new ReadTimeout(timeoutMs);
      this.#pending = null;
      if (n === null) return false;
      this.#append(this.#chunk.subarray(0, n));
      return true;
    } catch (error) {
      // A failed read is over; a timed-out one is still pending.
      if (!(error instanceof ReadTimeout)) this.#pending = null;
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  #append(bytes: Uint8Array): void {
    const held = this.#end - this.#start;
    if (this.#end + bytes.length > this.#store.length) {
      let capacity = this.#store.length;
      while (capacity < held + bytes.length) capacity *= 2;
      if (capacity === this.#store.length) {
        this.#store.copyWithin(0, this.#start, this.#end);
      } else {
        const grown = new Uint8Array(capacity);
        grown.set(this.#store.subarray(this.#start, this.#end));
        this.#store = grown;
      }
      this.#start = 0;
      this.#end = held;
    }
    this.#store.set(bytes, this.#end);
    this.#end += bytes.length;
  }

  /** Reads one frame; null when the runner closed the connection. */
  async readFrame(timeoutMs = 15_000): Promise<Frame | null> {
    for (;;) {
      const b = this.#store;
      const s = this.#start;
      if (this.#end - s >= 4) {
        const length = (b[s + 1]! << 16) | (b[s + 2]! << 8) | b[s + 3]!;
        if (this.#end - s >= 4 + length) {
          const f = { type: b[s]!, payload: b.slice(s + 4, s + 4 + length) };
          this.#start = s + 4 + length;
          if (this.#start === this.#end) this.#start = this.#end = 0;
          this.received.push({ type: f.type, length });
          return f;
        }
      }
      if (!await this.#fill(timeoutMs)) {
        if (this.buffered) throw new Error("the runner closed the connection mid-frame");
        return null;
      }
    }
  }

  /** True if nothing arrives within `ms` (the runner stayed quiet). */
  async quietFor(ms: number): Promise<boolean> {
    if (this.buffered) return false;
    try {
      await this.#fill(ms);
      return false;
    } catch (error) {
      if (error instanceof ReadTimeout) return true;
      throw error;
    }
  }

  /** True when the runner closed the connection (EOF) within `ms`, with nothing sent before. */
  async closedWithin(ms: number): Promise<boolean> {
    if (this.buffered) return false;
    try {
      return !await this.#fill(ms);
    } catch (error) {
      if (error instanceof ReadTimeout) return false;
      throw error;
    }
  }

  /** Bytes received but not yet returned as frames. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Writes `data` in writes of at most `size` bytes, pausing `pauseMs` after each if given. */
  async writeChunked(data: Uint8Array, size: number, pauseMs = 0): Promise<void> {
    for (let at = 0; at < data.length; at += size) {
      await this.write(data.subarray(at, at + size));
      if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  }

  /** PrepareConf; resolves to the reply. */
  async prepare(conf: readonly Entry[] | null, key?: string): Promise<Reply> {
    await this.send(RPC.PrepareConf, encodePrepareConf(conf, key));
    return decodeReply((await this.readFrame())!);
  }

  /** PrepareConf that must succeed; resolves to the token. */
  async token(
    conf: readonly Entry[] | null,
    key = `route#${crypto.randomUUID()}#ext-plugin-pre-req#1`,
  ): Promise<number> {
    const reply = await this.prepare(conf, key);
    if (reply.rpc !== 1) throw new Error(`PrepareConf failed: ${JSON.stringify(reply)}`);
    return reply.token;
  }

  /**
   * Sends a call (type 2 or 4), answers ExtraInfo questions with `answer`, and resolves to the
   * final reply and the questions asked.
   */
  async call(
    type: number,
    payload: Uint8Array,
    answer: Answerer = answerNothing,
    timeoutMs = 15_000,
  ): Promise<{ reply: Reply; asks: Ask[] }> {
    await this.send(type, payload);
    const asks: Ask[] = [];
    for (;;) {
      const f = await this.readFrame(timeoutMs);
      if (!f) throw new Error("the runner closed the connection during a call");
      if (f.type !== RPC.ExtraInfo) return { reply: decodeReply(f), asks };
      const ask = decodeAsk(f.payload);
      asks.push(ask);
      await this.send(RPC.ExtraInfo, encodeExtraInfoResp(answer(ask)));
    }
  }

  /**
   * Like {@linkcode call}, but before answering each question checks that the runner sent
   * nothing more (strict alternation, PROTOCOL.md §4.4).
   */
  async strictCall(
    type: number,
    payload: Uint8Array,
    answer: Answerer,
  ): Promise<{ reply: Reply; asks: Ask[] }> {
    await this.send(type, payload);
    const asks: Ask[] = [];
    for (;;) {
      const f = await this.readFrame();
      if (!f) throw new Error("the runner closed the connection");
      if (f.type !== RPC.ExtraInfo) return { reply: decodeReply(f), asks };
      asks.push(decodeAsk(f.payload));
      if (!await this.quietFor(30)) {
        throw new Error("the runner sent another frame before its question was answered");
      }
      await this.send(RPC.ExtraInfo, encodeExtraInfoResp(answer(asks.at(-1)!)));
    }
  }

  /** HTTPReqCall shortcut. */
  reqCall(call: ReqCall, answer?: Answerer): Promise<{ reply: Reply; asks: Ask[] }> {
    return this.call(RPC.HttpReqCall, encodeReqCall(call), answer);
  }

  /** HTTPRespCall shortcut. */
  respCall(call: RespCall, answer?: Answerer): Promise<{ reply: Reply; asks: Ask[] }> {
    return this.call(RPC.HttpRespCall, encodeRespCall(call), answer);
  }

  /** Closes the connection. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}
