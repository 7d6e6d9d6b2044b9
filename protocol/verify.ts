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

const SCALAR_SIZE = { u8: 1, u16: 2, u32: 4 } as const;

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
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 12) fail(`payload of ${bytes.length} bytes is shorter than any table (12)`);
  verifyTable(view, view.getUint32(0, true), shape, "root");
}

function fail(message: string): never {
  throw new MalformedPayloadError(message);
}

// `where` names the table in error messages; nested locations are built only on failure.
function verifyTable(view: DataView, table: number, shape: TableShape, where: string): void {
  const size = view.byteLength;
  if (table % 4 !== 0 || table + 4 > size) fail(`${where}: table offset ${table} out of bounds`);
  const vtable = table - view.getInt32(table, true);
  if (vtable < 0 || vtable % 2 !== 0 || vtable + 4 > size) {
    fail(`${where}: vtable offset ${vtable} out of bounds`);
  }
  const vtableSize = view.getUint16(vtable, true);
  const tableSize = view.getUint16(vtable + 2, true);
  if (vtableSize < 4 || vtableSize % 2 !== 0 || vtable + vtableSize > size) {
    fail(`${where}: vtable size ${vtableSize} invalid`);
  }
  if (tableSize < 4 || table + tableSize > size) fail(`${where}: table size ${tableSize} invalid`);
  const fields = Math.min(shape.length, (vtableSize - 4) >> 1);
  for (let id = 0; id < fields; id++) {
    const kind = shape[id];
    if (!kind) continue;
    const fieldOffset = view.getUint16(vtable + 4 + 2 * id, true);
    if (fieldOffset === 0) continue;
    // The generated readers read vtable entries as signed 16-bit numbers: an offset above
    // 0x7fff would send them to a place before the table that this check never saw.
    if (fieldOffset > 0x7fff) fail(`${where}: field ${id} offset ${fieldOffset} out of range`);
    const at = table + fieldOffset;
    if (kind === "u8" || kind === "u16" || kind === "u32") {
      if (fieldOffset + SCALAR_SIZE[kind] > tableSize) {
        fail(`${where}: field ${id} outside its table`);
      }
      continue;
    }
    if (fieldOffset + 4 > tableSize) fail(`${where}: field ${id} outside its table`);
    const target = at + view.getUint32(at, true);
    if (kind === "string" || kind === "bytes") {
      verifyVector(view, target, 1, kind === "string", where, id);
    } else if ("tableVector" in kind) {
      const count = verifyVector(view, target, 4, false, where, id);
      if (count > MAX_TABLE_VECTOR) {
        fail(`${where}.${id}: ${count} tables in one vector, more than ${MAX_TABLE_VECTOR}`);
      }
      for (let i = 0; i < count; i++) {
        const slot = target + 4 + 4 * i;
        verifyTable(view, slot + view.getUint32(slot, true), kind.tableVector, where);
      }
    } else {
      const typeOffset = view.getUint16(vtable + 4 + 2 * (id - 1), true);
      const type = typeOffset === 0 ? 0 : view.getUint8(table + typeOffset);
      const member = kind.union[type - 1];
      if (member) verifyTable(view, target, member, where);
    }
  }
}

function verifyVector(
  view: DataView,
  at: number,
  elementSize: number,
  terminated: boolean,
  where: string,
  field: number,
): number {
  const size = view.byteLength;
  if (at % 4 !== 0 || at + 4 > size) fail(`${where}.${field}: vector offset ${at} out of bounds`);
  const count = view.getUint32(at, true);
  const end = at + 4 + count * elementSize + (terminated ? 1 : 0);
  if (end > size) {
    fail(`${where}.${field}: ${count} elements run past the end of the payload`);
  }
  return count;
}
