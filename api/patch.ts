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

/** The decoded form of a patch. Every field is optional: absent means "unchanged". */
export class Patch {
  /** The request is answered now (request phase): `status`, `responseHeaders`, `responseBody`. */
  stop = false;
  /** Stop status, or the new response status in the response phase; 0 when unchanged. */
  status = 0;
  /** New request path (decoded, without a query string). */
  path: Uint8Array | null = null;
  /** Request headers by lower-case name: their complete new values; an empty list deletes. */
  headers: Map<string, Uint8Array[]> | null = null;
  /** Request args by name: their complete new values (null = no value); empty list deletes. */
  args: Map<string, (Uint8Array | null)[]> | null = null;
  /** New request body (request phase). */
  requestBody: Uint8Array | null = null;
  /**
   * The complete list of client response headers: the stop headers, or the headers added while
   * proxying (request phase), or the upstream headers after changes (response phase).
   */
  responseHeaders: ByteEntry[] | null = null;
  /** Stop body (request phase) or new response body (response phase). */
  responseBody: Uint8Array | null = null;

  /** True when nothing is changed. */
  get empty(): boolean {
    return !this.stop && this.status === 0 && this.path === null && this.headers === null &&
      this.args === null && this.requestBody === null && this.responseHeaders === null &&
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

  /** Appends the binary form to `out`. */
  encode(out: ByteWriter): void {
    if (this.stop) out.u8(Tag.Stop);
    if (this.status !== 0) out.u8(Tag.Status).u16(this.status);
    if (this.path) out.u8(Tag.Path).bytes(this.path);
    if (this.headers) {
      for (const [name, values] of this.headers) {
        out.u8(Tag.Header).latin1(name).u16(values.length);
        for (const value of values) out.bytes(value);
      }
    }
    if (this.args) {
      for (const [name, values] of this.args) {
        out.u8(Tag.Arg).latin1(name).u16(values.length);
        for (const value of values) {
          if (value === null) out.u8(0);
          else out.u8(1).bytes(value);
        }
      }
    }
    if (this.requestBody) out.u8(Tag.RequestBody).bytes(this.requestBody);
    if (this.responseHeaders) {
      out.u8(Tag.ResponseHeaders).u32(this.responseHeaders.length);
      for (const [name, value] of this.responseHeaders) out.bytes(name).bytes(value);
    }
    if (this.responseBody) out.u8(Tag.ResponseBody).bytes(this.responseBody);
  }

  /**
   * Reads a patch from untrusted bytes. The result's byte strings are views into `bytes`.
   * Throws {@linkcode ByteFormatError} for anything malformed.
   */
  static decode(bytes: Uint8Array): Patch {
    const patch = new Patch();
    const reader = new ByteReader(bytes);
    while (reader.remaining > 0) {
      const tag = reader.u8();
      switch (tag) {
        case Tag.Stop:
          patch.stop = true;
          break;
        case Tag.Status: {
          const status = reader.u16();
          if (status < 100 || status > 999) throw new ByteFormatError(`status ${status} invalid`);
          patch.status = status;
          break;
        }
        case Tag.Path:
          patch.path = reader.bytesView();
          break;
        case Tag.Header: {
          const name = decodeLatin1(reader.bytesView());
          const count = reader.u16();
          const values: Uint8Array[] = [];
          for (let i = 0; i < count; i++) values.push(reader.bytesView());
          (patch.headers ??= new Map()).set(name, values);
          break;
        }
        case Tag.Arg: {
          const name = decodeLatin1(reader.bytesView());
          const count = reader.u16();
          const values: (Uint8Array | null)[] = [];
          for (let i = 0; i < count; i++) values.push(reader.u8() ? reader.bytesView() : null);
          (patch.args ??= new Map()).set(name, values);
          break;
        }
        case Tag.RequestBody:
          patch.requestBody = reader.bytesView();
          break;
        case Tag.ResponseHeaders: {
          const count = reader.u32();
          // Each entry needs at least 8 bytes: refuse counts the input cannot hold.
          if (count * 8 > reader.remaining) {
            throw new ByteFormatError(`${count} response headers cannot fit`);
          }
          const list: ByteEntry[] = [];
          for (let i = 0; i < count; i++) list.push([reader.bytesView(), reader.bytesView()]);
          patch.responseHeaders = list;
          break;
        }
        case Tag.ResponseBody:
          patch.responseBody = reader.bytesView();
          break;
        default:
          throw new ByteFormatError(`unknown patch tag ${tag} at offset ${reader.offset - 1}`);
      }
    }
    return patch;
  }
}
