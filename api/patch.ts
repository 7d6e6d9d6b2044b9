/**
 * A patch is what one plugin call changes, and, merged over a chain, what the runner answers
 * APISIX with. Plugins write patches (in their worker); the runner reads them as untrusted input,
 * merges them in conf order and hands the merged patch to the next plugin as its starting view.
 *
 * Binary form: a sequence of records, each a one-byte tag and its fields; byte strings are a u32
 * little-endian length and the bytes. Header names and values are Latin-1 byte strings, paths and
 * args UTF-8, exactly as they go on the wire.
 *
 * @module
 */
import { ByteFormatError, ByteReader, type ByteWriter, decodeLatin1 } from "./bytes.ts";
import { runSteps, STEP_ENTRIES, type Steps } from "../protocol/steps.ts";
import { MAX_TABLE_VECTOR } from "../protocol/verify.ts";

/**
 * Most entries one list of a patch (request headers, args, response headers) may hold: the same
 * limit the runner applies to what APISIX sends. Request headers count their values.
 */
export const MAX_PATCH_ENTRIES: number = MAX_TABLE_VECTOR;

/** Most values one header or arg name may have: the binary form counts them in 16 bits. */
export const MAX_VALUES_PER_NAME = 0xffff;

/** Thrown when a patch holds more than the limits above; the call fails, nothing is sent. */
export class PatchLimitError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = "PatchLimitError";
  }
}

const enum Tag {
  Stop = 1,
  Status = 2,
  Path = 3,
  Header = 4,
  Arg = 5,
  RequestBody = 6,
  ResponseHeaders = 7,
  ResponseBody = 8,
}

/** A header or response-header entry as bytes. */
export type ByteEntry = readonly [name: Uint8Array, value: Uint8Array];

/**
 * Where the lists of a decoded patch are in its bytes, before they are read into objects (see
 * {@linkcode Patch.lazyLists}): no object per entry, so a patch of a few hundred thousand
 * entries leaves the garbage collector nothing to copy while the runner answers from it.
 */
export interface PatchLists {
  /** The patch's bytes. */
  readonly bytes: Uint8Array;
  /** Request header records: where each starts (its name's length), in order; names unique. */
  readonly headers: Int32Array;
  /** Arg records, as `headers`. */
  readonly args: Int32Array;
  /** Response headers: where each entry starts (its name's length); null when there is none. */
  readonly responseHeaders: Int32Array | null;
}

const NO_OFFSETS = new Int32Array(0);

// Patches with at most this many entries are read into objects at once (they cost less so).
const SMALL_PATCH = 64;

/** Offsets of records, in an Int32Array that grows (no object per offset). */
class Offsets {
  list = new Int32Array(16);
  length = 0;
  push(offset: number): void {
    if (this.length === this.list.length) {
      const grown = new Int32Array(this.list.length * 2);
      grown.set(this.list);
      this.list = grown;
    }
    this.list[this.length++] = offset;
  }
  take(): Int32Array {
    return this.length ? this.list.subarray(0, this.length) : NO_OFFSETS;
  }
}

/** Skips a u32-length-prefixed byte string (the same errors as reading it). */
function skipBytes(reader: ByteReader): void {
  const n = reader.u32();
  if (n > reader.remaining) reader.raw(n);
  reader.offset += n;
}

/** Whether two of `records`' names (a u32 length and the bytes, at each offset) are equal. */
function* hasDuplicateNames(bytes: Uint8Array, records: Int32Array): Steps<boolean> {
  if (records.length < 2) return false;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let size = 16;
  while (size < records.length * 2) size *= 2;
  // Open addressing: each slot holds a record's index + 1.
  const table = new Int32Array(size);
  const mask = size - 1;
  for (let r = 0; r < records.length; r++) {
    const at = records[r]!;
    const length = view.getUint32(at, true);
    let hash = 0x811c9dc5;
    for (let i = at + 4; i < at + 4 + length; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193);
    for (let slot = hash & mask;; slot = (slot + 1) & mask) {
      const other = table[slot]! - 1;
      if (other < 0) {
        table[slot] = r + 1;
        break;
      }
      const from = records[other]!;
      if (view.getUint32(from, true) !== length) continue;
      let same = true;
      for (let i = 0; i < length; i++) {
        if (bytes[at + 4 + i] !== bytes[from + 4 + i]) {
          same = false;
          break;
        }
      }
      if (same) return true;
    }
    if (r % STEP_ENTRIES === STEP_ENTRIES - 1) yield;
  }
  return false;
}

/**
 * Reads a record that holds one value (stop, status, path, a body) into `patch`, for both
 * decoders; throws {@linkcode ByteFormatError} for a tag that is not a patch record.
 */
function readScalarRecord(patch: Patch, tag: number, reader: ByteReader): void {
  switch (tag) {
    case Tag.Stop:
      patch.stop = true;
      return;
    case Tag.Status: {
      const status = reader.u16();
      if (status < 100 || status > 999) throw new ByteFormatError(`status ${status} invalid`);
      patch.status = status;
      return;
    }
    case Tag.Path:
      patch.path = reader.bytesView();
      return;
    case Tag.RequestBody:
      patch.requestBody = reader.bytesView();
      return;
    case Tag.ResponseBody:
      patch.responseBody = reader.bytesView();
      return;
    default:
      throw new ByteFormatError(`unknown patch tag ${tag} at offset ${reader.offset - 1}`);
  }
}

/** A response-header list's count, refused when the input cannot hold that many entries. */
function responseHeaderCount(reader: ByteReader): number {
  const count = reader.u32();
  // Each entry needs at least 8 bytes.
  if (count * 8 > reader.remaining) {
    throw new ByteFormatError(`${count} response headers cannot fit`);
  }
  return count;
}

/** The decoded form of a patch. Every field is optional: absent means "unchanged". */
export class Patch {
  /** The request is answered now (request phase): `status`, `responseHeaders`, `responseBody`. */
  stop = false;
  /** Stop status, or the new response status in the response phase; 0 when unchanged. */
  status = 0;
  /** New request path (decoded, without a query string). */
  path: Uint8Array | null = null;
  /** New request body (request phase). */
  requestBody: Uint8Array | null = null;
  /** Stop body (request phase) or new response body (response phase). */
  responseBody: Uint8Array | null = null;
  #headers: Map<string, Uint8Array[]> | null = null;
  #args: Map<string, (Uint8Array | null)[]> | null = null;
  #responseHeaders: ByteEntry[] | null = null;
  // The lists not yet read into the fields above (decoded patches read them when first asked).
  #lazy: PatchLists | null = null;

  /** Request headers by lower-case name: their complete new values; an empty list deletes. */
  get headers(): Map<string, Uint8Array[]> | null {
    if (this.#lazy) runSteps(this.readListsSteps());
    return this.#headers;
  }
  set headers(headers: Map<string, Uint8Array[]> | null) {
    if (this.#lazy) runSteps(this.readListsSteps());
    this.#headers = headers;
  }

  /** Request args by name: their complete new values (null = no value); empty list deletes. */
  get args(): Map<string, (Uint8Array | null)[]> | null {
    if (this.#lazy) runSteps(this.readListsSteps());
    return this.#args;
  }
  set args(args: Map<string, (Uint8Array | null)[]> | null) {
    if (this.#lazy) runSteps(this.readListsSteps());
    this.#args = args;
  }

  /**
   * The complete list of client response headers: the stop headers, or the headers added while
   * proxying (request phase), or the upstream headers after changes (response phase).
   */
  get responseHeaders(): ByteEntry[] | null {
    if (this.#lazy) runSteps(this.readListsSteps());
    return this.#responseHeaders;
  }
  set responseHeaders(list: ByteEntry[] | null) {
    if (this.#lazy) runSteps(this.readListsSteps());
    this.#responseHeaders = list;
  }

  /**
   * A decoded patch whose lists are still only offsets into its bytes: those offsets (the runner
   * answers from them without an object per entry), else null.
   */
  get lazyLists(): PatchLists | null {
    return this.#lazy;
  }

  /** Reads the lists of a decoded patch into objects (done once, when first asked for). */
  *readListsSteps(): Steps<void> {
    const lazy = this.#lazy;
    if (!lazy) return;
    const { bytes } = lazy;
    const reader = new ByteReader(bytes);
    let step = 0;
    let headers: Map<string, Uint8Array[]> | null = null;
    for (const at of lazy.headers) {
      reader.offset = at;
      const name = decodeLatin1(reader.bytesView());
      const count = reader.u16();
      const values: Uint8Array[] = [];
      for (let i = 0; i < count; i++) {
        values.push(reader.bytesView());
        if (++step % STEP_ENTRIES === 0) yield;
      }
      (headers ??= new Map()).set(name, values);
      if (++step % STEP_ENTRIES === 0) yield;
    }
    let args: Map<string, (Uint8Array | null)[]> | null = null;
    for (const at of lazy.args) {
      reader.offset = at;
      const name = decodeLatin1(reader.bytesView());
      const count = reader.u16();
      const values: (Uint8Array | null)[] = [];
      for (let i = 0; i < count; i++) {
        values.push(reader.u8() ? reader.bytesView() : null);
        if (++step % STEP_ENTRIES === 0) yield;
      }
      (args ??= new Map()).set(name, values);
      if (++step % STEP_ENTRIES === 0) yield;
    }
    let list: ByteEntry[] | null = null;
    if (lazy.responseHeaders) {
      list = [];
      for (const at of lazy.responseHeaders) {
        reader.offset = at;
        list.push([reader.bytesView(), reader.bytesView()]);
        if (++step % STEP_ENTRIES === 0) yield;
      }
    }
    // Read in slices: a setter may have run meanwhile.
    if (this.#lazy !== lazy) return;
    this.#lazy = null;
    this.#headers = headers;
    this.#args = args;
    this.#responseHeaders = list;
  }

  /** True when nothing is changed. */
  get empty(): boolean {
    const lazy = this.#lazy;
    if (lazy && (lazy.headers.length || lazy.args.length || lazy.responseHeaders)) return false;
    return !this.stop && this.status === 0 && this.path === null && this.#headers === null &&
      this.#args === null && this.requestBody === null && this.#responseHeaders === null &&
      this.responseBody === null;
  }

  /** Applies `later` (a patch made after this one) on top of this one. */
  merge(later: Patch): void {
    if (later.stop) this.stop = true;
    if (later.status !== 0) this.status = later.status;
    if (later.path) this.path = later.path;
    if (later.headers) {
      this.headers ??= new Map();
      for (const [name, values] of later.headers) this.headers.set(name, values);
    }
    if (later.args) {
      this.args ??= new Map();
      for (const [name, values] of later.args) this.args.set(name, values);
    }
    if (later.requestBody) this.requestBody = later.requestBody;
    if (later.responseHeaders) this.responseHeaders = later.responseHeaders;
    if (later.responseBody) this.responseBody = later.responseBody;
  }

  /**
   * Appends the binary form to `out`. Throws {@linkcode PatchLimitError} for a patch over the
   * limits (a count never wraps); `out` may then hold part of the patch.
   */
  encode(out: ByteWriter): void {
    runSteps(this.encodeSteps(out));
  }

  /** {@linkcode encode} in pieces. */
  *encodeSteps(out: ByteWriter): Steps<void> {
    if (this.#lazy) return yield* this.#encodeLazySteps(out, this.#lazy);
    if (this.stop) out.u8(Tag.Stop);
    if (this.status !== 0) out.u8(Tag.Status).u16(this.status);
    if (this.path) out.u8(Tag.Path).bytes(this.path);
    let entries = 0;
    if (this.headers) {
      for (const [name, values] of this.headers) {
        entries += Math.max(1, values.length);
        checkEntries(entries, "request headers", name, values.length);
        out.u8(Tag.Header).latin1(name).u16(values.length);
        for (const value of values) out.bytes(value);
        if (entries % STEP_ENTRIES === 0) yield;
      }
    }
    if (this.args) {
      entries = 0;
      for (const [name, values] of this.args) {
        entries += Math.max(1, values.length);
        checkEntries(entries, "args", name, values.length);
        out.u8(Tag.Arg).latin1(name).u16(values.length);
        for (const value of values) {
          if (value === null) out.u8(0);
          else out.u8(1).bytes(value);
        }
        if (entries % STEP_ENTRIES === 0) yield;
      }
    }
    if (this.requestBody) out.u8(Tag.RequestBody).bytes(this.requestBody);
    if (this.responseHeaders) {
      checkEntries(this.responseHeaders.length, "response headers", "", 0);
      out.u8(Tag.ResponseHeaders).u32(this.responseHeaders.length);
      let i = 0;
      for (const [name, value] of this.responseHeaders) {
        out.bytes(name).bytes(value);
        if (++i % STEP_ENTRIES === 0) yield;
      }
    }
    if (this.responseBody) out.u8(Tag.ResponseBody).bytes(this.responseBody);
  }

  /**
   * {@linkcode encodeSteps} for a decoded patch whose lists are still offsets: the records are
   * copied from its bytes (its names are unique, so they are what the Maps would hold, in the
   * same order), without reading them into objects.
   */
  *#encodeLazySteps(out: ByteWriter, lazy: PatchLists): Steps<void> {
    const { bytes } = lazy;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const after = (at: number) => at + 4 + view.getUint32(at, true);
    if (this.stop) out.u8(Tag.Stop);
    if (this.status !== 0) out.u8(Tag.Status).u16(this.status);
    if (this.path) out.u8(Tag.Path).bytes(this.path);
    let entries = 0;
    let step = 0;
    for (const record of lazy.headers) {
      let end = after(record);
      const count = view.getUint16(end, true);
      end += 2;
      for (let i = 0; i < count; i++) end = after(end);
      entries += Math.max(1, count);
      checkEntries(entries, "request headers", "", 0);
      out.u8(Tag.Header).raw(bytes.subarray(record, end));
      if ((step += count + 1) >= STEP_ENTRIES) {
        step = 0;
        yield;
      }
    }
    entries = 0;
    for (const record of lazy.args) {
      let at = after(record);
      const count = view.getUint16(at, true);
      at += 2;
      entries += Math.max(1, count);
      checkEntries(entries, "args", "", 0);
      out.u8(Tag.Arg).raw(bytes.subarray(record, at));
      // A value's flag is written as the encoder writes it (any non-zero byte reads as 1).
      for (let i = 0; i < count; i++) {
        if (bytes[at++]) {
          const end = after(at);
          out.u8(1).raw(bytes.subarray(at, end));
          at = end;
        } else {
          out.u8(0);
        }
      }
      if ((step += count + 1) >= STEP_ENTRIES) {
        step = 0;
        yield;
      }
    }
    if (this.requestBody) out.u8(Tag.RequestBody).bytes(this.requestBody);
    const list = lazy.responseHeaders;
    if (list) {
      checkEntries(list.length, "response headers", "", 0);
      out.u8(Tag.ResponseHeaders).u32(list.length);
      for (let i = 0; i < list.length; i++) {
        const at = list[i]!;
        out.raw(bytes.subarray(at, after(after(at))));
        if (++step % STEP_ENTRIES === 0) yield;
      }
    }
    if (this.responseBody) out.u8(Tag.ResponseBody).bytes(this.responseBody);
  }

  /** {@linkcode merge} in pieces. */
  *mergeSteps(later: Patch): Steps<void> {
    yield* this.readListsSteps();
    yield* later.readListsSteps();
    const { headers, args } = later;
    later.headers = later.args = null;
    this.merge(later);
    later.headers = headers;
    later.args = args;
    let i = 0;
    if (headers) {
      this.headers ??= new Map();
      for (const [name, values] of headers) {
        this.headers.set(name, values);
        if (++i % STEP_ENTRIES === 0) yield;
      }
    }
    if (args) {
      this.args ??= new Map();
      for (const [name, values] of args) {
        this.args.set(name, values);
        if (++i % STEP_ENTRIES === 0) yield;
      }
    }
  }

  /**
   * Reads a patch from untrusted bytes. The result's byte strings are views into `bytes`.
   * Throws {@linkcode ByteFormatError} for anything malformed.
   */
  static decode(bytes: Uint8Array): Patch {
    return runSteps(Patch.decodeSteps(bytes));
  }

  /**
   * {@linkcode decode} in pieces. The lists of a patch of more than a few entries stay offsets
   * into `bytes` (see {@linkcode lazyLists}) until first asked for, unless a name repeats.
   */
  static *decodeSteps(bytes: Uint8Array): Steps<Patch> {
    // A few entries cost less as objects than offsets and the lists made from them.
    return Patch.#decodeSmall(bytes) ?? (yield* Patch.#decodeLazy(bytes));
  }

  /** A patch of at most {@linkcode SMALL_PATCH} entries, read into objects; else null. */
  static #decodeSmall(bytes: Uint8Array): Patch | null {
    const patch = new Patch();
    let entries = 0;
    const reader = new ByteReader(bytes);
    while (reader.remaining > 0) {
      const tag = reader.u8();
      switch (tag) {
        case Tag.Header: {
          const name = decodeLatin1(reader.bytesView());
          const count = reader.u16();
          if ((entries += count + 1) > SMALL_PATCH) return null;
          const values: Uint8Array[] = [];
          for (let i = 0; i < count; i++) values.push(reader.bytesView());
          (patch.#headers ??= new Map()).set(name, values);
          break;
        }
        case Tag.Arg: {
          const name = decodeLatin1(reader.bytesView());
          const count = reader.u16();
          if ((entries += count + 1) > SMALL_PATCH) return null;
          const values: (Uint8Array | null)[] = [];
          for (let i = 0; i < count; i++) values.push(reader.u8() ? reader.bytesView() : null);
          (patch.#args ??= new Map()).set(name, values);
          break;
        }
        case Tag.ResponseHeaders: {
          const count = responseHeaderCount(reader);
          if ((entries += count) > SMALL_PATCH) return null;
          const list: ByteEntry[] = [];
          for (let i = 0; i < count; i++) list.push([reader.bytesView(), reader.bytesView()]);
          patch.#responseHeaders = list;
          break;
        }
        default:
          readScalarRecord(patch, tag, reader);
      }
    }
    return patch;
  }

  /** A patch whose lists stay offsets into `bytes`, in pieces. */
  static *#decodeLazy(bytes: Uint8Array): Steps<Patch> {
    const patch = new Patch();
    let step = 0;
    const reader = new ByteReader(bytes);
    const headers = new Offsets();
    const args = new Offsets();
    let responseHeaders: Offsets | null = null;
    while (reader.remaining > 0) {
      const tag = reader.u8();
      switch (tag) {
        case Tag.Header: {
          headers.push(reader.offset);
          skipBytes(reader);
          const count = reader.u16();
          for (let i = 0; i < count; i++) {
            skipBytes(reader);
            if (++step % STEP_ENTRIES === 0) yield;
          }
          if (++step % STEP_ENTRIES === 0) yield;
          break;
        }
        case Tag.Arg: {
          args.push(reader.offset);
          skipBytes(reader);
          const count = reader.u16();
          for (let i = 0; i < count; i++) {
            if (reader.u8()) skipBytes(reader);
            if (++step % STEP_ENTRIES === 0) yield;
          }
          if (++step % STEP_ENTRIES === 0) yield;
          break;
        }
        case Tag.ResponseHeaders: {
          const count = responseHeaderCount(reader);
          responseHeaders = new Offsets();
          for (let i = 0; i < count; i++) {
            responseHeaders.push(reader.offset);
            skipBytes(reader);
            skipBytes(reader);
            if (++step % STEP_ENTRIES === 0) yield;
          }
          break;
        }
        default:
          readScalarRecord(patch, tag, reader);
      }
    }
    if (headers.length || args.length || responseHeaders) {
      patch.#lazy = {
        bytes,
        headers: headers.take(),
        args: args.take(),
        responseHeaders: responseHeaders?.take() ?? null,
      };
      // A repeated name: the last values win, in the first one's place (a Map's order).
      const lazy = patch.#lazy;
      if (
        (yield* hasDuplicateNames(bytes, lazy.headers)) ||
        (yield* hasDuplicateNames(bytes, lazy.args))
      ) {
        yield* patch.readListsSteps();
      }
    }
    return patch;
  }
}

function checkEntries(entries: number, list: string, name: string, values: number): void {
  if (values > MAX_VALUES_PER_NAME) {
    throw new PatchLimitError(
      `${JSON.stringify(name)} has ${values} values, more than ${MAX_VALUES_PER_NAME}`,
    );
  }
  if (entries > MAX_PATCH_ENTRIES) {
    throw new PatchLimitError(`more than ${MAX_PATCH_ENTRIES} ${list} in one patch`);
  }
}

// The least an entry with only a name adds to a FlatBuffers reply around its text: its offset
// in the vector, the table's vtable offset and name offset, the string's length and final 0.
const NAME_ENTRY = 4 + 4 + 4 + 5;
// What a value adds to an entry around its text: its offset, its string's length and final 0.
const VALUE_EXTRA = 4 + 5;
// The least a string or byte vector adds around its content: its length.
const VECTOR_OVERHEAD = 4;
// The least a reply has around its vectors: the root offset and table.
const REPLY_OVERHEAD = 8;

/** What {@linkcode scanPatch} found in patch bytes that are well formed. */
export interface PatchScan {
  /** Why the patch is over a limit (the call fails), or null. */
  over: string | null;
  /** Request header entries (each value counts, and a deletion). */
  headers: number;
  /** Arg entries (each value counts, and a deletion). */
  args: number;
  /** Response header entries. */
  responseHeaders: number;
  /**
   * The least number of bytes the reply made of the patch takes (its text, and the least
   * FlatBuffers adds around it): a patch over the limit by this count is over it for sure, and
   * the reply encoder checks the exact size of one that is not.
   */
  replyBytes: number;
}

function hasCrLf(value: Uint8Array): boolean {
  return value.indexOf(0x0a) >= 0 || value.indexOf(0x0d) >= 0;
}

// Bytes searched for CR/LF between two yields: a 16 MiB value takes a few ms to search.
const CRLF_CHUNK = 256 * 1024;

/** Whether `test` holds for a piece of `value`, searched in pieces of {@linkcode CRLF_CHUNK}. */
function* searchSteps(value: Uint8Array, test: (piece: Uint8Array) => boolean): Steps<boolean> {
  for (let at = 0; at < value.length; at += CRLF_CHUNK) {
    if (test(value.subarray(at, at + CRLF_CHUNK))) return true;
    yield;
  }
  return false;
}

/** {@linkcode hasCrLf} in pieces, for values longer than {@linkcode CRLF_CHUNK}. */
function hasCrLfSteps(value: Uint8Array): Steps<boolean> {
  return searchSteps(value, hasCrLf);
}

const hasQuestionMark = (piece: Uint8Array) => piece.includes(0x3f);

/**
 * The bounded validating pass over untrusted patch bytes, run before anything is decoded: reads
 * only lengths and counts, stops at the first list over {@linkcode MAX_PATCH_ENTRIES} or at a
 * reply that its own lengths make larger than `maxReplyBytes`, and throws {@linkcode ByteFormatError} for bytes the worker's
 * encoder never writes (a record twice, a length past the end, a path or header APISIX would
 * refuse). `response`: the patch answers an HTTPRespCall (header values become entries of their
 * own instead of one joined entry per name).
 */
export function* scanPatch(
  bytes: Uint8Array,
  response: boolean,
  maxReplyBytes: number,
): Steps<PatchScan> {
  const reader = new ByteReader(bytes);
  // The single-value records seen so far, one bit per tag (tags are below 32).
  let seen = 0;
  let headers = 0;
  let args = 0;
  let responseHeaders = 0;
  // The least bytes of each part of the reply: what a rewrite carries (path, request headers,
  // args, request body), what a Stop or a response-phase reply carries (response headers and
  // body in the request phase, the changed headers and the body in the response phase).
  let rewrite = 0;
  let answer = 0;
  let stop = false;
  let step = 0;
  const least = () => REPLY_OVERHEAD + (response || stop ? answer : rewrite);
  const result = (over: string | null): PatchScan => ({
    over,
    headers,
    args,
    responseHeaders,
    replyBytes: least(),
  });
  while (reader.remaining > 0) {
    const tag = reader.u8();
    if (tag !== Tag.Header && tag !== Tag.Arg && tag < 32) {
      if (seen & (1 << tag)) throw new ByteFormatError(`patch record ${tag} appears twice`);
      seen |= 1 << tag;
    }
    switch (tag) {
      case Tag.Stop:
        stop = true;
        break;
      case Tag.Status: {
        const status = reader.u16();
        if (status < 100 || status > 999) throw new ByteFormatError(`status ${status} invalid`);
        break;
      }
      case Tag.Path: {
        const path = reader.bytesView();
        if (
          path.length === 0 || path[0] !== 0x2f ||
          (path.length > CRLF_CHUNK
            ? yield* searchSteps(path, hasQuestionMark)
            : hasQuestionMark(path))
        ) {
          throw new ByteFormatError("a rewritten path must start with / and have no ?");
        }
        rewrite += path.length + VECTOR_OVERHEAD;
        break;
      }
      case Tag.Header: {
        const name = reader.bytesView();
        if (
          name.length === 0 ||
          (name.length > CRLF_CHUNK ? yield* hasCrLfSteps(name) : hasCrLf(name))
        ) {
          throw new ByteFormatError("a header name is empty or contains CR/LF");
        }
        const count = reader.u16();
        headers += Math.max(1, count);
        if (headers > MAX_PATCH_ENTRIES) {
          return result(`has more than ${MAX_PATCH_ENTRIES} request header values`);
        }
        // A rewrite sets a header as one entry, its values joined with ", "; a response-phase
        // reply has an entry per value.
        rewrite += NAME_ENTRY + name.length + (count ? VALUE_EXTRA + 2 * (count - 1) : 0);
        for (let i = 0; i < count; i++) {
          const value = reader.bytesView();
          if (value.length > CRLF_CHUNK ? yield* hasCrLfSteps(value) : hasCrLf(value)) {
            throw new ByteFormatError("a header value contains CR/LF");
          }
          rewrite += value.length;
          if (response) answer += NAME_ENTRY + VALUE_EXTRA + name.length + value.length;
          if (++step % STEP_ENTRIES === 0) yield;
        }
        break;
      }
      case Tag.Arg: {
        const name = reader.bytesView();
        const count = reader.u16();
        args += Math.max(1, count);
        if (args > MAX_PATCH_ENTRIES) return result(`has more than ${MAX_PATCH_ENTRIES} args`);
        // An entry per value (no value: an empty one); none: one entry without a value.
        rewrite += count ? count * (NAME_ENTRY + VALUE_EXTRA + name.length) : NAME_ENTRY;
        for (let i = 0; i < count; i++) {
          if (reader.u8()) rewrite += reader.bytesView().length;
          if (++step % STEP_ENTRIES === 0) yield;
        }
        break;
      }
      case Tag.RequestBody:
        rewrite += reader.bytesView().length + VECTOR_OVERHEAD;
        break;
      case Tag.ResponseBody:
        answer += reader.bytesView().length + VECTOR_OVERHEAD;
        break;
      case Tag.ResponseHeaders: {
        const count = reader.u32();
        if (count > MAX_PATCH_ENTRIES) {
          return result(`has ${count} response headers, more than ${MAX_PATCH_ENTRIES}`);
        }
        responseHeaders = count;
        for (let i = 0; i < count; i++) {
          const name = reader.bytesView();
          const value = reader.bytesView();
          if (
            name.length === 0 ||
            (name.length > CRLF_CHUNK ? yield* hasCrLfSteps(name) : hasCrLf(name)) ||
            (value.length > CRLF_CHUNK ? yield* hasCrLfSteps(value) : hasCrLf(value))
          ) {
            throw new ByteFormatError("a response header is empty or contains CR/LF");
          }
          const entry = NAME_ENTRY + VALUE_EXTRA + name.length + value.length;
          // A request-phase rewrite carries them too (headers added while proxying).
          rewrite += entry;
          if (!response) answer += entry;
          if (++step % STEP_ENTRIES === 0) yield;
        }
        break;
      }
      default:
        throw new ByteFormatError(`unknown patch tag ${tag} at offset ${reader.offset - 1}`);
    }
    if (least() > maxReplyBytes) {
      return result(`makes a reply of more than ${maxReplyBytes} bytes (the protocol's limit)`);
    }
    if (++step % STEP_ENTRIES === 0) yield;
  }
  return result(null);
}

/**
 * The entry limits of a chain's patches merged, from each patch's scan: the entries of each list
 * add up (an upper bound: a later plugin may replace an earlier one's names). The merged reply's
 * bytes are left to the reply encoder's exact check (a later body replaces an earlier one, so
 * they do not add up). Returns the sum, with `over` set when it is over a limit.
 */
export function addScans(a: PatchScan, b: PatchScan): PatchScan {
  const sum: PatchScan = {
    over: null,
    headers: a.headers + b.headers,
    args: a.args + b.args,
    responseHeaders: a.responseHeaders + b.responseHeaders,
    replyBytes: Math.max(a.replyBytes, b.replyBytes),
  };
  sum.over = sum.headers > MAX_PATCH_ENTRIES
    ? `have more than ${MAX_PATCH_ENTRIES} request header values`
    : sum.args > MAX_PATCH_ENTRIES
    ? `have more than ${MAX_PATCH_ENTRIES} args`
    : sum.responseHeaders > MAX_PATCH_ENTRIES
    ? `have more than ${MAX_PATCH_ENTRIES} response headers`
    : null;
  return sum;
}
