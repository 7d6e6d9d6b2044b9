/**
 * Turns a chain's merged patch into the reply APISIX applies (PROTOCOL.md §5).
 *
 * @module
 */
import { decodeLatin1, encodeLatin1 } from "./bytes.ts";
import type { Patch, PatchLists } from "./patch.ts";
import { runSteps, STEP_ENTRIES, type Steps } from "../protocol/steps.ts";
import { isHopByHopOrLength } from "../protocol/apisix_rules.ts";
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

/**
 * The complete header list of an HTTPRespCall reply: the upstream's headers with the plugins'
 * changes (a changed name's entries are replaced by its new values, which go last), without
 * hop-by-hop headers and Content-Length, so APISIX keeps Content-Type and friends
 * (PROTOCOL.md §5.3).
 */
export function responseHeaders(patch: Patch | null, req: HttpRespCallReq): WireEntry[] {
  return runSteps(responseHeadersSteps(patch, req));
}

/** {@linkcode responseHeaders} in pieces (see `slicer.ts`). */
export function* responseHeadersSteps(
  patch: Patch | null,
  req: HttpRespCallReq,
): Steps<WireEntry[]> {
  const out: WireEntry[] = [];
  let step = 0;
  yield* patch?.readListsSteps() ?? [];
  const changed = patch?.headers ?? null;
  const entry = new TextEntry();
  for (let i = 0; i < req.headersLength(); i++) {
    if (i % STEP_ENTRIES === STEP_ENTRIES - 1) yield;
    req.headers(i, entry);
    const name = entry.name(Encoding.UTF8_BYTES) as Uint8Array | null;
    if (!name) continue;
    const text = decodeLatin1(name).toLowerCase();
    if (isHopByHopOrLength(text) || changed?.has(text)) continue;
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
