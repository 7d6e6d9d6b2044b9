/**
 * Turns a chain's merged patch into the reply APISIX applies (PROTOCOL.md §5).
 *
 * @module
 */
import { decodeLatin1, encodeLatin1 } from "./bytes.ts";
import type { Patch, PatchLists } from "./patch.ts";
import { runSteps, STEP_ENTRIES, type Steps } from "../protocol/steps.ts";
import { isHopByHopOrLength, mayBeHopByHopOrLength } from "../protocol/apisix_rules.ts";
import type { ReqCallAction, WireEntries, WireEntry, WireEntryList } from "../protocol/encode.ts";
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

/**
 * Entries read from a decoded patch's bytes when the encoder asks for them: a list of tens of
 * thousands of entries then holds no object per entry (each entry made is dropped at once, which
 * costs the garbage collector next to nothing), where arrays of them would be copied by every
 * collection while the reply is built.
 */
abstract class LazyEntries implements WireEntryList {
  protected bytes: Uint8Array;
  protected view: DataView;
  abstract readonly length: number;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** The byte string whose u32 length is at `at`. */
  protected string(at: number): Uint8Array {
    return this.bytes.subarray(at + 4, at + 4 + this.view.getUint32(at, true));
  }

  /** Where the byte string after the one at `at` starts. */
  protected after(at: number): number {
    return at + 4 + this.view.getUint32(at, true);
  }

  abstract at(i: number): WireEntry | undefined;
}

/** A rewrite's request headers: one entry per name, the values joined; none deletes. */
class LazyHeaders extends LazyEntries {
  #records: Int32Array;
  readonly length: number;

  constructor(bytes: Uint8Array, records: Int32Array) {
    super(bytes);
    this.#records = records;
    this.length = records.length;
  }

  at(i: number): WireEntry | undefined {
    const record = this.#records[i]!;
    const name = this.string(record);
    let at = this.after(record);
    const count = this.view.getUint16(at, true);
    at += 2;
    if (count === 0) return [name, null];
    if (count === 1) return [name, this.string(at)];
    const values: Uint8Array[] = [];
    for (let v = 0; v < count; v++, at = this.after(at)) values.push(this.string(at));
    return [name, join(values)];
  }
}

/** A rewrite's args: an entry per value (no value: an empty one), a name without any deletes. */
class LazyArgs extends LazyEntries {
  // Per entry: where its name is, and where its value is (-1: none, -2: empty).
  #names: Int32Array;
  #values: Int32Array;
  length = 0;

  constructor(bytes: Uint8Array, entries: number) {
    super(bytes);
    this.#names = new Int32Array(entries);
    this.#values = new Int32Array(entries);
  }

  /** Adds the entries of the record at `record`; returns how many. */
  add(record: number): number {
    const bytes = this.bytes;
    let at = this.after(record);
    const count = this.view.getUint16(at, true);
    at += 2;
    let n = this.length;
    if (count === 0) {
      this.#names[n] = record;
      this.#values[n++] = -1;
    }
    for (let v = 0; v < count; v++) {
      this.#names[n] = record;
      if (bytes[at++]) {
        this.#values[n++] = at;
        at = this.after(at);
      } else {
        this.#values[n++] = -2;
      }
    }
    const added = n - this.length;
    this.length = n;
    return added;
  }

  at(i: number): WireEntry | undefined {
    const value = this.#values[i]!;
    return [
      this.string(this.#names[i]!),
      value === -1 ? null : value === -2 ? EMPTY : this.string(value),
    ];
  }
}

/** Response headers, as the patch lists them. */
class LazyPairs extends LazyEntries {
  #entries: Int32Array;
  readonly length: number;

  constructor(bytes: Uint8Array, entries: Int32Array) {
    super(bytes);
    this.#entries = entries;
    this.length = entries.length;
  }

  at(i: number): WireEntry | undefined {
    const at = this.#entries[i]!;
    return [this.string(at), this.string(this.after(at))];
  }
}

/** How many arg entries `records` make (a name without values makes one). */
function argEntries(lists: PatchLists): number {
  const view = new DataView(lists.bytes.buffer, lists.bytes.byteOffset, lists.bytes.byteLength);
  let n = 0;
  for (const record of lists.args) {
    n += Math.max(1, view.getUint16(record + 4 + view.getUint32(record, true), true));
  }
  return n;
}

/** The action of a patch whose lists are still offsets into its bytes. */
function* lazyRequestAction(patch: Patch, lists: PatchLists): Steps<ReqCallAction> {
  const respHeaders: WireEntries = lists.responseHeaders
    ? new LazyPairs(lists.bytes, lists.responseHeaders)
    : [];
  if (patch.stop) {
    return {
      kind: "stop",
      status: patch.status || 200,
      headers: respHeaders,
      body: patch.responseBody,
    };
  }
  const headers = new LazyHeaders(lists.bytes, lists.headers);
  // The counts are a few bytes each, read without an object: at once.
  const args = new LazyArgs(lists.bytes, argEntries(lists));
  let step = 0;
  for (const record of lists.args) {
    step += args.add(record);
    if (step >= STEP_ENTRIES) {
      step = 0;
      yield;
    }
  }
  if (
    !patch.path && !headers.length && !args.length && !respHeaders.length && !patch.requestBody
  ) {
    return { kind: "none" };
  }
  return { kind: "rewrite", path: patch.path, headers, args, respHeaders, body: patch.requestBody };
}

/** The HTTPReqCall action for a merged patch (`null`: no plugin changed anything). */
export function requestAction(patch: Patch | null): ReqCallAction {
  return runSteps(requestActionSteps(patch));
}

/** {@linkcode requestAction} in pieces (see `slicer.ts`). */
export function* requestActionSteps(patch: Patch | null): Steps<ReqCallAction> {
  if (!patch) return { kind: "none" };
  const lists = patch.lazyLists;
  if (lists) return yield* lazyRequestAction(patch, lists);
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

/** The lengths of the names of `changed` (a changed header's name is lower-case Latin-1). */
function lengthsOf(changed: ReadonlyMap<string, unknown> | null): Set<number> | null {
  if (!changed?.size) return null;
  const lengths = new Set<number>();
  for (const name of changed.keys()) lengths.add(name.length);
  return lengths;
}

/**
 * Whether an upstream header is left out of the reply: hop-by-hop or Content-Length, or a name a
 * plugin changed. A name whose length matches none of those is kept without being decoded.
 */
function leftOut(
  name: Uint8Array,
  changed: ReadonlyMap<string, unknown> | null,
  changedLengths: ReadonlySet<number> | null,
): boolean {
  if (!mayBeHopByHopOrLength(name) && !changedLengths?.has(name.length)) return false;
  const text = decodeLatin1(name).toLowerCase();
  return isHopByHopOrLength(text) || (changed?.has(text) ?? false);
}

/**
 * The complete header list of an HTTPRespCall reply: the upstream's headers with the plugins'
 * changes (a changed name's entries are replaced by its new values, which go last), without
 * hop-by-hop headers and Content-Length, so APISIX keeps Content-Type and friends
 * (PROTOCOL.md §5.3).
 */
export function responseHeaders(patch: Patch | null, req: HttpRespCallReq): WireEntries {
  return runSteps(responseHeadersSteps(patch, req));
}

/** {@linkcode responseHeaders} in pieces (see `slicer.ts`). */
export function* responseHeadersSteps(
  patch: Patch | null,
  req: HttpRespCallReq,
): Steps<WireEntries> {
  const lists = patch?.lazyLists;
  if (lists) return yield* lazyResponseHeaders(lists, req);
  const out: WireEntry[] = [];
  let step = 0;
  const changed = patch?.headers ?? null;
  const changedLengths = lengthsOf(changed);
  const entry = new TextEntry();
  for (let i = 0; i < req.headersLength(); i++) {
    if (i % STEP_ENTRIES === STEP_ENTRIES - 1) yield;
    req.headers(i, entry);
    const name = entry.name(Encoding.UTF8_BYTES) as Uint8Array | null;
    if (!name) continue;
    if (leftOut(name, changed, changedLengths)) continue;
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

/** FNV-1a over Latin-1 code units (the same for a name's bytes and its text). */
function hashStart(): number {
  return 0x811c9dc5;
}
function hashStep(hash: number, unit: number): number {
  return Math.imul(hash ^ unit, 0x01000193);
}

/** The request header names of a patch's records, to look up by text without a string each. */
class NameSet {
  #bytes: Uint8Array;
  #view: DataView;
  #records: Int32Array;
  #table: Int32Array;
  #mask: number;

  constructor(bytes: Uint8Array, view: DataView, records: Int32Array) {
    this.#bytes = bytes;
    this.#view = view;
    this.#records = records;
    let size = 16;
    while (size < records.length * 2) size *= 2;
    this.#table = new Int32Array(size);
    this.#mask = size - 1;
  }

  /** Adds record `r` (names are unique in a patch whose lists are offsets). */
  add(r: number): void {
    const at = this.#records[r]!;
    const length = this.#view.getUint32(at, true);
    let hash = hashStart();
    for (let i = at + 4; i < at + 4 + length; i++) hash = hashStep(hash, this.#bytes[i]!);
    let slot = hash & this.#mask;
    while (this.#table[slot]) slot = (slot + 1) & this.#mask;
    this.#table[slot] = r + 1;
  }

  /** Whether a record's name is `text`, byte for byte. */
  has(text: string): boolean {
    let hash = hashStart();
    for (let i = 0; i < text.length; i++) hash = hashStep(hash, text.charCodeAt(i));
    for (let slot = hash & this.#mask;; slot = (slot + 1) & this.#mask) {
      const r = this.#table[slot]! - 1;
      if (r < 0) return false;
      const at = this.#records[r]!;
      if (this.#view.getUint32(at, true) !== text.length) continue;
      let same = true;
      for (let i = 0; i < text.length; i++) {
        if (this.#bytes[at + 4 + i] !== text.charCodeAt(i)) {
          same = false;
          break;
        }
      }
      if (same) return true;
    }
  }
}

/** Kept upstream headers (by index), then the patch's values (by offset), made when asked. */
class LazyResponseHeaders extends LazyEntries {
  #req: HttpRespCallReq;
  #entry = new TextEntry();
  #upstream: Int32Array;
  #kept: number;
  // Per patch value: where its record is, and where the value is.
  #names: Int32Array;
  #values: Int32Array;
  readonly length: number;

  constructor(
    bytes: Uint8Array,
    req: HttpRespCallReq,
    upstream: Int32Array,
    kept: number,
    names: Int32Array,
    values: Int32Array,
    count: number,
  ) {
    super(bytes);
    this.#req = req;
    this.#upstream = upstream;
    this.#kept = kept;
    this.#names = names;
    this.#values = values;
    this.length = kept + count;
  }

  at(i: number): WireEntry | undefined {
    if (i < this.#kept) {
      this.#req.headers(this.#upstream[i]!, this.#entry);
      return [
        this.#entry.name(Encoding.UTF8_BYTES) as Uint8Array,
        (this.#entry.value(Encoding.UTF8_BYTES) as Uint8Array | null) ?? EMPTY,
      ];
    }
    const v = i - this.#kept;
    return [this.string(this.#names[v]!), this.string(this.#values[v]!)];
  }
}

/** {@linkcode responseHeadersSteps} for a patch whose lists are still offsets into its bytes. */
function* lazyResponseHeaders(
  lists: PatchLists,
  req: HttpRespCallReq,
): Steps<WireEntries> {
  const { bytes, headers } = lists;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const changed = new NameSet(bytes, view, headers);
  for (let r = 0; r < headers.length; r++) {
    changed.add(r);
    if (r % STEP_ENTRIES === STEP_ENTRIES - 1) yield;
  }
  const total = req.headersLength();
  const upstream = new Int32Array(total);
  let kept = 0;
  const entry = new TextEntry();
  for (let i = 0; i < total; i++) {
    if (i % STEP_ENTRIES === STEP_ENTRIES - 1) yield;
    req.headers(i, entry);
    const name = entry.name(Encoding.UTF8_BYTES) as Uint8Array | null;
    if (!name) continue;
    const text = decodeLatin1(name).toLowerCase();
    if (isHopByHopOrLength(text) || changed.has(text)) continue;
    upstream[kept++] = i;
  }
  let count = 0;
  for (const record of headers) {
    count += view.getUint16(record + 4 + view.getUint32(record, true), true);
  }
  const names = new Int32Array(count);
  const values = new Int32Array(count);
  let n = 0;
  let step = 0;
  for (const record of headers) {
    const length = view.getUint32(record, true);
    const name = decodeLatin1(bytes.subarray(record + 4, record + 4 + length));
    let at = record + 4 + length;
    const many = view.getUint16(at, true);
    at += 2;
    step += many + 1;
    if (step >= STEP_ENTRIES) {
      step = 0;
      yield;
    }
    if (isHopByHopOrLength(name)) continue;
    for (let v = 0; v < many; v++) {
      names[n] = record;
      values[n++] = at;
      at += 4 + view.getUint32(at, true);
    }
  }
  return new LazyResponseHeaders(bytes, req, upstream, kept, names, values, n);
}
