/**
 * Payloads built by hand, byte by byte, for the cases random generation reaches too rarely:
 * offsets the generated readers interpret differently from the verifier, vectors with millions
 * of elements that all point at one table, tables that point back at themselves, and requests
 * padded to exactly the 16,777,215-byte limit.
 *
 * @module
 */
import * as flatbuffers from "flatbuffers";
import { HttpReqCallReq } from "../../protocol/gen/http_req_call_req.ts";
import { TextEntry } from "../../protocol/gen/text_entry.ts";

/** A little-endian writer over a fixed buffer. */
class Layout {
  readonly bytes: Uint8Array;
  readonly view: DataView;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }

  u16(at: number, value: number): this {
    this.view.setUint16(at, value, true);
    return this;
  }

  u32(at: number, value: number): this {
    this.view.setUint32(at, value >>> 0, true);
    return this;
  }

  i32(at: number, value: number): this {
    this.view.setInt32(at, value, true);
    return this;
  }

  /** A vtable at `at`: its size, the table's size, then one offset per field. */
  vtable(at: number, tableSize: number, fields: readonly number[]): this {
    this.u16(at, 4 + 2 * fields.length).u16(at + 2, tableSize);
    fields.forEach((field, i) => this.u16(at + 4 + 2 * i, field));
    return this;
  }

  /** A string of ASCII `text` at `at` (length, bytes, terminator). */
  string(at: number, text: string): this {
    this.u32(at, text.length);
    for (let i = 0; i < text.length; i++) this.bytes[at + 4 + i] = text.charCodeAt(i);
    this.bytes[at + 4 + text.length] = 0;
    return this;
  }
}

/**
 * A PrepareConf whose conf field sits at table offset 0x8004. The verifier reads vtable entries
 * as unsigned and checks an empty vector at table + 0x8004; the generated reader reads them as
 * signed 16-bit and finds, at table − 0x7ffc, a vector claiming 268 million entries. Before the
 * verifier refused such offsets, the runner looped over them until it ran out of memory.
 */
export function signedOffsetPrepareConf(): Uint8Array {
  const table = 0x8000 + 64;
  const out = new Layout(table + 0x8004 + 16);
  out.u32(0, table);
  out.vtable(table - 8, 0x8008, [0x8004]);
  out.i32(table, 8);
  // What the verifier looks at: an offset to an empty vector.
  out.u32(table + 0x8004, 4).u32(table + 0x8008, 0);
  // What the decoder looks at: an offset to a vector with a huge count.
  const decoderSees = table - 0x7ffc;
  out.u32(decoderSees, 4).u32(decoderSees + 4, 0x0fff_ffff);
  return out.bytes;
}

/**
 * A PrepareConf whose conf vector has `count` elements that all point at one TextEntry
 * {name: `name`, value: `value`}: a payload of 4 bytes per element that decodes to `count`
 * entries.
 */
export function hugeConfVector(count: number, name: string, value: string): Uint8Array {
  // root | vtable(6) pad | table: soffset, conf | vector: count, offsets | entry vtable | entry | strings
  const vtable = 4;
  const table = 12;
  const vector = 20;
  const entryVtable = vector + 4 + 4 * count;
  const entry = entryVtable + 8;
  const nameAt = entry + 12;
  const valueAt = nameAt + 4 + ((name.length + 4) & ~3);
  const out = new Layout(valueAt + 4 + ((value.length + 4) & ~3));
  out.u32(0, table);
  out.vtable(vtable, 8, [4]);
  out.i32(table, table - vtable);
  out.u32(table + 4, vector - (table + 4));
  out.u32(vector, count);
  for (let i = 0; i < count; i++) {
    const slot = vector + 4 + 4 * i;
    out.u32(slot, entry - slot);
  }
  out.vtable(entryVtable, 12, [4, 8]);
  out.i32(entry, entry - entryVtable);
  out.u32(entry + 4, nameAt - (entry + 4));
  out.u32(entry + 8, valueAt - (entry + 8));
  out.string(nameAt, name).string(valueAt, value);
  return out.bytes;
}

/**
 * An HTTPReqCall (`type` 2) or HTTPRespCall (`type` 4) with `count` headers that all point at
 * one TextEntry: four bytes per header on the wire, a full header for whoever decodes them.
 */
export function hugeHeaderVector(count: number, token: number, type: 2 | 4 = 2): Uint8Array {
  // HTTPReqCall: headers are field 5, conf_token 6; HTTPRespCall: headers 2, conf_token 3.
  const fields = type === 2 ? [0, 0, 0, 0, 0, 4, 8] : [0, 0, 4, 8];
  const vtable = 4;
  const table = vtable + ((4 + 2 * fields.length + 3) & ~3);
  const vector = table + 12;
  const entryVtable = vector + 4 + 4 * count;
  const entry = entryVtable + 8;
  const nameAt = entry + 12;
  const valueAt = nameAt + 12;
  const out = new Layout(valueAt + 12);
  out.u32(0, table);
  out.vtable(vtable, 12, fields);
  out.i32(table, table - vtable);
  out.u32(table + 4, vector - (table + 4));
  out.u32(table + 8, token);
  out.u32(vector, count);
  for (let i = 0; i < count; i++) {
    const slot = vector + 4 + 4 * i;
    out.u32(slot, entry - slot);
  }
  out.vtable(entryVtable, 12, [4, 8]);
  out.i32(entry, entry - entryVtable);
  out.u32(entry + 4, nameAt - (entry + 4));
  out.u32(entry + 8, valueAt - (entry + 8));
  out.string(nameAt, "x-many").string(valueAt, "1");
  return out.bytes;
}

/**
 * A PrepareConf whose conf vector's only element is the root table itself: decoding it as a
 * TextEntry reads the root's own fields again. A verifier or decoder that followed references
 * without a schema would never finish.
 */
export function selfReferencingPrepareConf(): Uint8Array {
  const vtable = 4;
  const table = 12;
  const vector = 20;
  const out = new Layout(vector + 8);
  out.u32(0, table);
  out.vtable(vtable, 8, [4]);
  out.i32(table, table - vtable);
  out.u32(table + 4, vector - (table + 4));
  out.u32(vector, 1);
  out.u32(vector + 4, table - (vector + 4));
  return out.bytes;
}

/**
 * A valid HTTPReqCall for `token` whose payload is exactly `size` bytes: one header,
 * `x-pad`, carries the filler. A builder's output is a multiple of 4 bytes, so up to three
 * zero bytes follow it (readers ignore bytes after the last table, as APISIX's would).
 */
export function paddedReqCall(token: number, size: number, id = 0): Uint8Array {
  const build = (pad: number, pathLength: number) => {
    const b = new flatbuffers.Builder(size + 1024);
    const path = b.createString("/" + "p".repeat(pathLength));
    const name = b.createString("x-pad");
    const value = b.createString(new Uint8Array(pad).fill(0x61));
    TextEntry.startTextEntry(b);
    TextEntry.addName(b, name);
    TextEntry.addValue(b, value);
    const headers = HttpReqCallReq.createHeadersVector(b, [TextEntry.endTextEntry(b)]);
    HttpReqCallReq.startHttpReqCallReq(b);
    if (id) HttpReqCallReq.addId(b, id);
    HttpReqCallReq.addPath(b, path);
    HttpReqCallReq.addHeaders(b, headers);
    HttpReqCallReq.addConfToken(b, token);
    b.finish(HttpReqCallReq.endHttpReqCallReq(b));
    return b.asUint8Array();
  };
  const aligned = size & ~3;
  for (let pathLength = 0; pathLength < 8; pathLength++) {
    const overhead = build(0, pathLength).length;
    const payload = build(aligned - overhead, pathLength);
    if (payload.length === aligned) {
      const out = new Uint8Array(size);
      out.set(payload);
      return out;
    }
  }
  throw new Error(`cannot pad an HTTPReqCall to exactly ${size} bytes`);
}
