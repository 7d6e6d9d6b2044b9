/**
 * Bounds checks for FlatBuffers that arrive from the network.
 *
 * The generated readers trust their input: an offset past the end reads as zero and a string
 * longer than the buffer is silently cut. Every payload from APISIX is therefore checked here
 * once, before any field is read, so that a malformed frame becomes a BAD_REQUEST error frame
 * instead of garbage. Only offsets and lengths are checked; no string is decoded.
 *
 * @module
 */

/** Thrown when a payload is not a well-formed FlatBuffer of the expected table. */
export class MalformedPayloadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MalformedPayloadError";
  }
}

/** The type of one table field, for the checks that field needs. */
export type FieldKind =
  | "u8"
  | "u16"
  | "u32"
  | "string"
  | "bytes"
  | { tableVector: TableShape }
  | { union: readonly (TableShape | null)[] };

/** The fields of a table, indexed by field id. A union takes two ids: its type, then its value. */
export type TableShape = readonly (FieldKind | null)[];

/**
 * Most tables one vector may hold. APISIX sends at most a few thousand headers or args, but
 * 16 MiB can hold four million elements that all point at one table: checking, decoding and
 * copying those would stall every connection for seconds.
 */
export const MAX_TABLE_VECTOR = 65_536;

/** `TextEntry { name: string; value: string }`. */
export const TEXT_ENTRY: TableShape = ["string", "string"];

/** `PrepareConfReq { conf: [TextEntry]; key: string }`. */
export const PREPARE_CONF_REQ: TableShape = [{ tableVector: TEXT_ENTRY }, "string"];

/** `HttpReqCallReq { id, src_ip, method, path, args, headers, conf_token }`. */
export const HTTP_REQ_CALL_REQ: TableShape = [
  "u32",
  "bytes",
  "u8",
  "string",
  { tableVector: TEXT_ENTRY },
  { tableVector: TEXT_ENTRY },
  "u32",
];

/** `HttpRespCallReq { id, status, headers, conf_token }`. */
export const HTTP_RESP_CALL_REQ: TableShape = [
  "u32",
  "u16",
  { tableVector: TEXT_ENTRY },
  "u32",
];

/** `ExtraInfoResp { result: [ubyte] }`. */
export const EXTRA_INFO_RESP: TableShape = ["bytes"];

/** Throws {@linkcode MalformedPayloadError} unless `bytes` holds a valid root table of `shape`. */
export function verifyRoot(bytes: Uint8Array, shape: TableShape): void {
  if (bytes.length < 12) fail(`payload of ${bytes.length} bytes is shorter than any table (12)`);
  verifyTable(bytes, u32(bytes, 0), compiled(shape), "root");
}

function fail(message: string): never {
  throw new MalformedPayloadError(message);
}

// Every request is verified, so the checks read integers straight from the bytes (no DataView
// per payload) and walk a compiled form of the shape: numbers instead of strings and objects.
const enum Check {
  None,
  U8,
  U16,
  U32,
  String,
  Bytes,
  TableVector,
  Union,
}

interface CompiledShape {
  checks: Check[];
  /** Per field: the shape of a table vector's elements, or a union's members by type - 1. */
  nested: (CompiledShape | (CompiledShape | null)[] | null)[];
}

const compiledShapes = new WeakMap<TableShape, CompiledShape>();

function compiled(shape: TableShape): CompiledShape {
  let result = compiledShapes.get(shape);
  if (result) return result;
  result = { checks: [], nested: [] };
  compiledShapes.set(shape, result);
  for (const kind of shape) {
    let check = Check.None;
    let nested: CompiledShape | (CompiledShape | null)[] | null = null;
    if (kind === "u8") check = Check.U8;
    else if (kind === "u16") check = Check.U16;
    else if (kind === "u32") check = Check.U32;
    else if (kind === "string") check = Check.String;
    else if (kind === "bytes") check = Check.Bytes;
    else if (kind && "tableVector" in kind) {
      check = Check.TableVector;
      nested = compiled(kind.tableVector);
    } else if (kind) {
      check = Check.Union;
      nested = kind.union.map((member) => member && compiled(member));
    }
    result.checks.push(check);
    result.nested.push(nested);
  }
  return result;
}

function u16(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8);
}

function u32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

// `where` names the table in error messages; nested locations are built only on failure.
function verifyTable(b: Uint8Array, table: number, shape: CompiledShape, where: string): void {
  const size = b.length;
  if (table % 4 !== 0 || table + 4 > size) fail(`${where}: table offset ${table} out of bounds`);
  // The soffset is signed: `| 0` makes it so.
  const vtable = table - (u32(b, table) | 0);
  if (vtable < 0 || vtable % 2 !== 0 || vtable + 4 > size) {
    fail(`${where}: vtable offset ${vtable} out of bounds`);
  }
  const vtableSize = u16(b, vtable);
  const tableSize = u16(b, vtable + 2);
  if (vtableSize < 4 || vtableSize % 2 !== 0 || vtable + vtableSize > size) {
    fail(`${where}: vtable size ${vtableSize} invalid`);
  }
  if (tableSize < 4 || table + tableSize > size) fail(`${where}: table size ${tableSize} invalid`);
  const checks = shape.checks;
  const fields = Math.min(checks.length, (vtableSize - 4) >> 1);
  for (let id = 0; id < fields; id++) {
    const check = checks[id]!;
    if (check === Check.None) continue;
    const fieldOffset = u16(b, vtable + 4 + 2 * id);
    if (fieldOffset === 0) continue;
    // The generated readers read vtable entries as signed 16-bit numbers: an offset above
    // 0x7fff would send them to a place before the table that this check never saw.
    if (fieldOffset > 0x7fff) fail(`${where}: field ${id} offset ${fieldOffset} out of range`);
    if (check <= Check.U32) {
      // U8, U16 and U32 are 1, 2 and 3: their sizes are 1, 2 and 4.
      if (fieldOffset + (check === Check.U32 ? 4 : check) > tableSize) {
        fail(`${where}: field ${id} outside its table`);
      }
      continue;
    }
    if (fieldOffset + 4 > tableSize) fail(`${where}: field ${id} outside its table`);
    const at = table + fieldOffset;
    const target = at + u32(b, at);
    if (check === Check.String || check === Check.Bytes) {
      verifyVector(b, target, 1, check === Check.String, where, id);
    } else if (check === Check.TableVector) {
      const count = verifyVector(b, target, 4, false, where, id);
      if (count > MAX_TABLE_VECTOR) {
        fail(`${where}.${id}: ${count} tables in one vector, more than ${MAX_TABLE_VECTOR}`);
      }
      const element = shape.nested[id] as CompiledShape;
      for (let i = 0; i < count; i++) {
        const slot = target + 4 + 4 * i;
        verifyTable(b, slot + u32(b, slot), element, where);
      }
    } else {
      const typeOffset = u16(b, vtable + 4 + 2 * (id - 1));
      const type = typeOffset === 0 ? 0 : b[table + typeOffset]!;
      const member = (shape.nested[id] as (CompiledShape | null)[])[type - 1];
      if (member) verifyTable(b, target, member, where);
    }
  }
}

function verifyVector(
  b: Uint8Array,
  at: number,
  elementSize: number,
  terminated: boolean,
  where: string,
  field: number,
): number {
  const size = b.length;
  if (at % 4 !== 0 || at + 4 > size) fail(`${where}.${field}: vector offset ${at} out of bounds`);
  const count = u32(b, at);
  const end = at + 4 + count * elementSize + (terminated ? 1 : 0);
  if (end > size) {
    fail(`${where}.${field}: ${count} elements run past the end of the payload`);
  }
  return count;
}
