/**
 * Reads ext-plugin frames from a connection into one reused buffer.
 *
 * @module
 */
import { HEADER_SIZE } from "./frame.ts";

/** Something bytes can be read from, such as a `Deno.Conn`. */
export interface Reader {
  read(buffer: Uint8Array): Promise<number | null>;
}

/** One frame. `payload` stays valid only until the reader reads again. */
export interface Frame {
  type: number;
  payload: Uint8Array;
}

/** Thrown when the peer closes the connection in the middle of a frame. */
export class TruncatedFrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TruncatedFrameError";
  }
}

const DEFAULT_BUFFER_SIZE = 16 * 1024;
// Move a partial frame to the front once less than this much room is left behind it, so that
// reads never shrink to a few bytes each.
const COMPACT_BELOW = 4096;

/**
 * Splits a byte stream into frames. Small frames are returned as views into one reused buffer
 * (so their payload must be consumed or copied before the next read); a frame larger than the
 * buffer gets a buffer of its own. Reads loop until a whole frame has arrived.
 */
export class FrameReader {
  #reader: Reader;
  #buffer: Uint8Array;
  #start = 0;
  #end = 0;

  constructor(reader: Reader, bufferSize = DEFAULT_BUFFER_SIZE) {
    this.#reader = reader;
    this.#buffer = new Uint8Array(bufferSize);
  }

  /** Bytes received but not yet returned as frames. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Returns the next frame if it has already arrived in full, without reading. */
  tryNext(): Frame | undefined {
    const available = this.#end - this.#start;
    if (available < HEADER_SIZE) return undefined;
    const b = this.#buffer;
    const s = this.#start;
    const length = (b[s + 1]! << 16) | (b[s + 2]! << 8) | b[s + 3]!;
    if (available < HEADER_SIZE + length) return undefined;
    this.#start = s + HEADER_SIZE + length;
    return { type: b[s]!, payload: b.subarray(s + HEADER_SIZE, this.#start) };
  }

  /**
   * Returns the next frame, or `null` when the peer closed the connection between frames.
   * Throws {@linkcode TruncatedFrameError} when it closed in the middle of one.
   */
  async next(): Promise<Frame | null> {
    for (;;) {
      const frame = this.tryNext();
      if (frame) return frame;
      if (this.#end - this.#start >= HEADER_SIZE) return await this.#readLarge();
      if (!await this.#fill()) {
        if (this.#end === this.#start) return null;
        throw new TruncatedFrameError(
          `connection closed after ${this.#end - this.#start} of the 4 bytes of a frame header`,
        );
      }
    }
  }

  /** Reads more bytes into the buffer; false on end of stream. */
  async #fill(): Promise<boolean> {
    if (this.#start === this.#end) {
      this.#start = this.#end = 0;
    } else if (this.#buffer.length - this.#end < COMPACT_BELOW) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    const n = await this.#reader.read(this.#buffer.subarray(this.#end));
    if (n === null || n === 0) return false;
    this.#end += n;
    return true;
  }

  /** A frame whose header has arrived but whose payload has not (fully). */
  async #readLarge(): Promise<Frame> {
    const b = this.#buffer;
    const s = this.#start;
    const type = b[s]!;
    const length = (b[s + 1]! << 16) | (b[s + 2]! << 8) | b[s + 3]!;
    if (HEADER_SIZE + length <= b.length) {
      // Fits the shared buffer: move it to the front and keep reading into it.
      while (this.#end - this.#start < HEADER_SIZE + length) {
        if (!await this.#fill()) throw this.#truncated(length);
      }
      return this.tryNext()!;
    }
    const payload = new Uint8Array(length);
    let filled = this.#end - s - HEADER_SIZE;
    payload.set(b.subarray(s + HEADER_SIZE, this.#end));
    this.#start = this.#end = 0;
    while (filled < length) {
      const n = await this.#reader.read(payload.subarray(filled));
      if (n === null || n === 0) throw this.#truncated(length, filled);
      filled += n;
    }
    return { type, payload };
  }

  #truncated(length: number, got = this.#end - this.#start - HEADER_SIZE): TruncatedFrameError {
    return new TruncatedFrameError(
      `connection closed after ${got} of the ${length} payload bytes of a frame`,
    );
  }
}
