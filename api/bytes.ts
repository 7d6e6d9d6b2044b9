/**
 * Little helpers for the byte formats this project defines itself: a growable writer, a
 * bounds-checked reader, and the two text encodings the protocol needs (UTF-8 for paths, args
 * and variables; Latin-1 "byte strings" for header names and values, as the Fetch standard's
 * `Headers` does, so that any byte round-trips unchanged).
 *
 * @module
 */

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

/** Thrown by {@linkcode ByteReader} when input ends early or is otherwise malformed. */
export class ByteFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ByteFormatError";
  }
}

/** Decodes UTF-8, replacing invalid sequences with U+FFFD. */
export function decodeUtf8(bytes: Uint8Array): string {
  // Short ASCII (variable names, most args) is built here: a third cheaper than the decoder.
  if (bytes.length <= 64) {
    let i = 0;
    while (i < bytes.length && bytes[i]! < 0x80) i++;
    if (i === bytes.length) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  }
  return utf8Decoder.decode(bytes);
}

/** Encodes a string as UTF-8. */
export function encodeUtf8(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

const wellFormed = new TextDecoder("utf-8", { ignoreBOM: true });

/** Length of the valid UTF-8 sequence starting at `i` (1-4), or 0 if it is not valid there. */
function sequenceLength(bytes: Uint8Array, i: number): number {
  const b = bytes[i]!;
  if (b < 0x80) return 1;
  let need: number;
  let low = 0x80;
  let high = 0xbf;
  if (b >= 0xc2 && b <= 0xdf) need = 1;
  else if (b >= 0xe0 && b <= 0xef) {
    need = 2;
    if (b === 0xe0) low = 0xa0;
    if (b === 0xed) high = 0x9f;
  } else if (b >= 0xf0 && b <= 0xf4) {
    need = 3;
    if (b === 0xf0) low = 0x90;
    if (b === 0xf4) high = 0x8f;
  } else return 0;
  for (let k = 1; k <= need; k++) {
    const c = bytes[i + k];
    if (c === undefined || c < low || c > high) return 0;
    low = 0x80;
    high = 0xbf;
  }
  return need + 1;
}

/**
 * Decodes UTF-8 without losing anything: each byte that is not part of a valid sequence
 * becomes the lone surrogate U+DC80–U+DCFF (Python's "surrogateescape"), so that
 * {@linkcode encodeUtf8Lossless} gives back exactly the same bytes. A leading BOM is kept.
 */
export function decodeUtf8Lossless(bytes: Uint8Array): string {
  let text = "";
  let run = 0;
  for (let i = 0; i < bytes.length;) {
    if (bytes[i]! < 0x80) {
      i++;
      continue;
    }
    const length = sequenceLength(bytes, i);
    if (length) {
      i += length;
      continue;
    }
    text += wellFormed.decode(bytes.subarray(run, i)) + String.fromCharCode(0xdc00 + bytes[i]!);
    run = ++i;
  }
  return run === 0 ? wellFormed.decode(bytes) : text + wellFormed.decode(bytes.subarray(run));
}

/** Whether `text[i]` is an escaped byte from {@linkcode decodeUtf8Lossless}. */
function isEscape(text: string, i: number): boolean {
  const unit = text.charCodeAt(i);
  if (unit < 0xdc80 || unit > 0xdcff) return false;
  const before = i > 0 ? text.charCodeAt(i - 1) : 0;
  return before < 0xd800 || before > 0xdbff;
}

/** Encodes text as UTF-8, turning the escapes of {@linkcode decodeUtf8Lossless} back into bytes. */
export function encodeUtf8Lossless(text: string): Uint8Array {
  const escapes: number[] = [];
  for (let i = 0; i < text.length; i++) if (isEscape(text, i)) escapes.push(i);
  if (escapes.length === 0) return utf8Encoder.encode(text);
  const parts: Uint8Array[] = [];
  let from = 0;
  for (const at of escapes) {
    parts.push(
      utf8Encoder.encode(text.slice(from, at)),
      Uint8Array.of(text.charCodeAt(at) - 0xdc00),
    );
    from = at + 1;
  }
  parts.push(utf8Encoder.encode(text.slice(from)));
  return concatBytes(parts);
}

/** The bytes of `parts` one after the other, in a new array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Decodes bytes as Latin-1: each byte becomes the code unit of the same value. */
export function decodeLatin1(bytes: Uint8Array): string {
  // Header names and values are short: building the string in JS costs less than a call into
  // the runtime's decoder.
  if (bytes.length <= 64) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  let ascii = true;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i]! > 0x7f) {
      ascii = false;
      break;
    }
  }
  // For longer ASCII text the native UTF-8 decoder is the fastest.
  if (ascii) return utf8Decoder.decode(bytes);
  let text = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    text += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return text;
}

/** True when every code unit of `text` fits in one byte. */
export function isByteString(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) > 0xff) return false;
  }
  return true;
}

/** Encodes a byte string (see {@linkcode isByteString}) as Latin-1. */
export function encodeLatin1(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

// Text up to this many UTF-16 units is encoded in JavaScript when it is ASCII.
const SHORT_TEXT = 64;

/** Appends little-endian integers and length-prefixed byte strings to a growing buffer. */
export class ByteWriter {
  #bytes: Uint8Array;
  #view: DataView;
  #length = 0;

  constructor(capacity = 256) {
    this.#bytes = new Uint8Array(capacity);
    this.#view = new DataView(this.#bytes.buffer);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#length;
  }

  #reserve(extra: number): number {
    const at = this.#length;
    const needed = at + extra;
    if (needed > this.#bytes.length) {
      let capacity = this.#bytes.length * 2;
      while (capacity < needed) capacity *= 2;
      const grown = new Uint8Array(capacity);
      grown.set(this.#bytes.subarray(0, at));
      this.#bytes = grown;
      this.#view = new DataView(grown.buffer);
    }
    this.#length = needed;
    return at;
  }

  // Each writer reserves before touching #bytes or #view: reserving may replace them.

  u8(value: number): this {
    const at = this.#reserve(1);
    this.#bytes[at] = value;
    return this;
  }

  u16(value: number): this {
    const at = this.#reserve(2);
    this.#view.setUint16(at, value, true);
    return this;
  }

  u32(value: number): this {
    const at = this.#reserve(4);
    this.#view.setUint32(at, value, true);
    return this;
  }

  /** Overwrites the u32 at `offset`, for lengths known only after their content. */
  patchU32(offset: number, value: number): this {
    this.#view.setUint32(offset, value, true);
    return this;
  }

  /** Raw bytes without a length prefix. */
  raw(bytes: Uint8Array): this {
    const at = this.#reserve(bytes.length);
    this.#bytes.set(bytes, at);
    return this;
  }

  /** A u32 length, then the bytes. */
  bytes(bytes: Uint8Array): this {
    return this.u32(bytes.length).raw(bytes);
  }

  /** Writes `text` as UTF-8 at `at`, in room reserved for it; returns the bytes written. */
  #encodeAt(text: string, at: number): number {
    const bytes = this.#bytes;
    // Short ASCII text (names, most values) costs less copied here than a call into the
    // runtime's encoder.
    if (text.length <= SHORT_TEXT) {
      let i = 0;
      for (; i < text.length; i++) {
        const code = text.charCodeAt(i);
        if (code >= 0x80) break;
        bytes[at + i] = code;
      }
      if (i === text.length) return i;
    }
    return utf8Encoder.encodeInto(text, bytes.subarray(at)).written;
  }

  /** A u32 length, then `text` as UTF-8. */
  utf8(text: string): this {
    const lengthAt = this.#reserve(4);
    // At most three bytes per UTF-16 code unit.
    const at = this.#reserve(text.length * 3);
    const written = this.#encodeAt(text, at);
    this.#length = at + written;
    return this.patchU32(lengthAt, written);
  }

  /** A u16 length, then `text` as UTF-8; throws a RangeError past 65,535 bytes. */
  utf8u16(text: string): this {
    const lengthAt = this.#reserve(2);
    const at = this.#reserve(text.length * 3);
    const written = this.#encodeAt(text, at);
    if (written > 0xffff) {
      this.#length = lengthAt;
      throw new RangeError(`${written} bytes of text, more than a u16 length can hold`);
    }
    this.#length = at + written;
    this.#bytes[lengthAt] = written & 0xff;
    this.#bytes[lengthAt + 1] = written >>> 8;
    return this;
  }

  /** A u32 length, then `text` (a byte string) as Latin-1. */
  latin1(text: string): this {
    this.u32(text.length);
    const at = this.#reserve(text.length);
    const bytes = this.#bytes;
    for (let i = 0; i < text.length; i++) bytes[at + i] = text.charCodeAt(i);
    return this;
  }

  /** Text as UTF-8 without a length prefix (for trailing fields). */
  rawUtf8(text: string): this {
    const at = this.#reserve(text.length * 3);
    this.#length = at + this.#encodeAt(text, at);
    return this;
  }

  /** A view of the bytes written; valid until the next write or reset. */
  view(): Uint8Array {
    return this.#bytes.subarray(0, this.#length);
  }

  /** A copy of the bytes written, in an ArrayBuffer of its own (ready to transfer). */
  take(): Uint8Array<ArrayBuffer> {
    return this.#bytes.slice(0, this.#length);
  }

  /** Forgets the content, keeping the capacity. */
  reset(): void {
    this.#length = 0;
  }

  /** Forgets everything after the first `length` bytes. */
  truncate(length: number): void {
    if (length < this.#length) this.#length = Math.max(0, length);
  }
}

/** Reads what {@linkcode ByteWriter} wrote, throwing {@linkcode ByteFormatError} on overruns. */
export class ByteReader {
  readonly bytes: Uint8Array;
  offset: number;
  /** Where reading stops; may be moved to read one record of a larger buffer at a time. */
  end: number;

  // Integers are assembled from bytes rather than read through a DataView: a reader is made
  // for every message and patch, and a DataView per reader cost more than the reading.
  constructor(bytes: Uint8Array, offset = 0, end = bytes.length) {
    this.bytes = bytes;
    this.offset = offset;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.offset;
  }

  #take(n: number): number {
    const at = this.offset;
    if (n < 0 || at + n > this.end) {
      throw new ByteFormatError(`needed ${n} bytes at offset ${at}, only ${this.end - at} left`);
    }
    this.offset = at + n;
    return at;
  }

  u8(): number {
    return this.bytes[this.#take(1)]!;
  }

  u16(): number {
    const at = this.#take(2);
    const b = this.bytes;
    return b[at]! | (b[at + 1]! << 8);
  }

  u32(): number {
    const at = this.#take(4);
    const b = this.bytes;
    return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
  }

  /** `n` raw bytes, as a view into the input. */
  raw(n: number): Uint8Array {
    const at = this.#take(n);
    return this.bytes.subarray(at, at + n);
  }

  /** A u32-length-prefixed byte string, as a view into the input. */
  bytesView(): Uint8Array {
    return this.raw(this.u32());
  }

  /** Everything left, as a view into the input. */
  rest(): Uint8Array {
    return this.raw(this.end - this.offset);
  }
}
