/**
 * Decoding with a bounds-checking ByteBuffer: the generated readers trust their input (an offset
 * past the end reads as `undefined`, a string is silently cut short, a byte vector silently
 * reads the bytes after the payload), so the fuzz suites decode every payload the verifier
 * accepts through this buffer, which throws {@linkcode OutOfBoundsRead} instead. "The verifier
 * accepted it" must imply "every read the runner and the plugin views make stays inside it".
 *
 * @module
 */
import { ByteBuffer, Encoding } from "flatbuffers";
import { ExtraInfoResp } from "../../protocol/gen/extra_info_resp.ts";
import { HttpReqCallReq } from "../../protocol/gen/http_req_call_req.ts";
import { HttpRespCallReq } from "../../protocol/gen/http_resp_call_req.ts";
import { PrepareConfReq } from "../../protocol/gen/prepare_conf_req.ts";
import { TextEntry } from "../../protocol/gen/text_entry.ts";

/** A read the generated code made outside the payload or outside its table. */
export class OutOfBoundsRead extends Error {
  constructor(message: string) {
    super(message);
    this.name = "OutOfBoundsRead";
  }
}

/** A ByteBuffer whose every read is checked against the payload and the table it belongs to. */
export class StrictByteBuffer extends ByteBuffer {
  #check(offset: number, size: number, what: string): void {
    if (!Number.isInteger(offset) || offset < 0 || offset + size > this.capacity()) {
      throw new OutOfBoundsRead(
        `${what} of ${size} bytes at ${offset}, payload ${this.capacity()}`,
      );
    }
  }

  override readUint8(offset: number): number {
    this.#check(offset, 1, "u8 read");
    return super.readUint8(offset);
  }

  override readInt8(offset: number): number {
    this.#check(offset, 1, "i8 read");
    return super.readInt8(offset);
  }

  override readUint16(offset: number): number {
    this.#check(offset, 2, "u16 read");
    return super.readUint16(offset);
  }

  override readInt16(offset: number): number {
    this.#check(offset, 2, "i16 read");
    return super.readInt16(offset);
  }

  override readInt32(offset: number): number {
    this.#check(offset, 4, "i32 read");
    return super.readInt32(offset);
  }

  override readUint32(offset: number): number {
    this.#check(offset, 4, "u32 read");
    return super.readUint32(offset);
  }

  override __offset(bbPos: number, vtableOffset: number): number {
    const field = super.__offset(bbPos, vtableOffset);
    if (field === 0) return 0;
    const vtable = bbPos - this.readInt32(bbPos);
    const tableSize = this.readUint16(vtable + 2);
    // (An offset below 4 overlaps the table's vtable offset: odd, but inside the table.)
    if (field < 0 || field >= tableSize) {
      throw new OutOfBoundsRead(`field offset ${field} outside its table of ${tableSize} bytes`);
    }
    return field;
  }

  override __string(offset: number, encoding?: Encoding): string | Uint8Array {
    const at = offset + this.readInt32(offset);
    const length = this.readUint32(at);
    this.#check(at + 4, length, "string");
    return super.__string(offset, encoding);
  }

  override __vector_len(offset: number): number {
    const length = super.__vector_len(offset);
    if (length < 0) throw new OutOfBoundsRead(`negative vector length ${length}`);
    return length;
  }

  /** Checks a byte vector the generated code returned as a view. */
  checkView(view: Uint8Array | null, what: string): Uint8Array | null {
    if (view === null) return null;
    const start = view.byteOffset - this.bytes().byteOffset;
    this.#check(start, view.length, what);
    return view;
  }
}

/** Latin-1 text of bytes (one character per byte), for comparisons. */
function text(bytes: Uint8Array | string | null): string | null {
  if (bytes === null) return null;
  if (typeof bytes === "string") throw new TypeError("expected bytes");
  let out = "";
  for (const b of bytes) out += String.fromCharCode(b);
  return out;
}

/** A name/value pair as decoded; a null value is an absent field. */
export type DecodedEntry = [string, string | null];

function entries(
  count: number,
  at: (index: number, into: TextEntry) => TextEntry | null,
): DecodedEntry[] {
  const out: DecodedEntry[] = [];
  for (let i = 0; i < count; i++) {
    const entry = at(i, new TextEntry())!;
    const name = text(entry.name(Encoding.UTF8_BYTES) as Uint8Array | null);
    out.push([name ?? "", text(entry.value(Encoding.UTF8_BYTES) as Uint8Array | null)]);
  }
  return out;
}

/** Places `payload` in the middle of a larger buffer, so that overruns read guard bytes. */
export function guarded(payload: Uint8Array): Uint8Array {
  const outer = new Uint8Array(payload.length + 128).fill(0xa5);
  outer.set(payload, 64);
  return outer.subarray(64, 64 + payload.length);
}

/** Every field of a `PrepareConfReq`, read the way the runner reads it. */
export function strictPrepareConf(payload: Uint8Array) {
  const bb = new StrictByteBuffer(guarded(payload));
  const req = PrepareConfReq.getRootAsPrepareConfReq(bb);
  return {
    key: text(req.key(Encoding.UTF8_BYTES) as Uint8Array | null),
    conf: req.confLength() ? entries(req.confLength(), (i, e) => req.conf(i, e)) : null,
  };
}

/** Every field of an `HttpReqCallReq`, read the way the runner and the request view read it. */
export function strictReqCall(payload: Uint8Array) {
  const bb = new StrictByteBuffer(guarded(payload));
  const req = HttpReqCallReq.getRootAsHttpReqCallReq(bb);
  const srcIp = bb.checkView(req.srcIpArray(), "src_ip");
  return {
    id: req.id(),
    srcIp: srcIp ? [...srcIp] : null,
    method: req.method(),
    path: text(req.path(Encoding.UTF8_BYTES) as Uint8Array | null),
    args: entries(req.argsLength(), (i, e) => req.args(i, e)),
    headers: entries(req.headersLength(), (i, e) => req.headers(i, e)),
    token: req.confToken(),
  };
}

/** Every field of an `HttpRespCallReq`. */
export function strictRespCall(payload: Uint8Array) {
  const bb = new StrictByteBuffer(guarded(payload));
  const req = HttpRespCallReq.getRootAsHttpRespCallReq(bb);
  return {
    id: req.id(),
    status: req.status(),
    headers: entries(req.headersLength(), (i, e) => req.headers(i, e)),
    token: req.confToken(),
  };
}

/** The `result` of an `ExtraInfoResp`. */
export function strictExtraInfoResp(payload: Uint8Array) {
  const bb = new StrictByteBuffer(guarded(payload));
  const resp = ExtraInfoResp.getRootAsExtraInfoResp(bb);
  const result = bb.checkView(resp.resultArray(), "result");
  return { result: result ? text(result) : null };
}
