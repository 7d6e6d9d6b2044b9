/**
 * The private channel between the runner and a sandbox process: a Unix socket carrying frames of
 * `[u32 length][u8 slot][batch]` (little-endian, `length` counts slot and batch). A slot is one
 * plugin worker in the sandbox; {@linkcode CONTROL_SLOT} carries the sandbox's own messages.
 *
 * @module
 */

/** The slot of messages for the sandbox process itself (JSON). */
export const CONTROL_SLOT = 255;

/** Largest frame accepted: a 16 MiB reply body plus everything around it. */
export const MAX_CHANNEL_FRAME = 64 * 1024 * 1024;

const HEADER = 5;

/** Thrown when the other side sends a frame that breaks the channel's rules. */
export class ChannelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ChannelError";
  }
}

/** A frame read from the channel. `batch` has an ArrayBuffer of its own. */
export interface ChannelFrame {
  slot: number;
  batch: Uint8Array<ArrayBuffer>;
}

/** Reads channel frames, returning each batch in a buffer of its own (ready to transfer). */
export class ChannelReader {
  #conn: Deno.Conn;
  #buffer = new Uint8Array(256 * 1024);
  #start = 0;
  #end = 0;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  #take(): ChannelFrame | undefined {
    const available = this.#end - this.#start;
    if (available < HEADER) return undefined;
    const b = this.#buffer;
    const s = this.#start;
    const length = (b[s]! | (b[s + 1]! << 8) | (b[s + 2]! << 16) | (b[s + 3]! << 24)) >>> 0;
    if (length < 1 || length > MAX_CHANNEL_FRAME) {
      throw new ChannelError(`frame length ${length} out of range`);
    }
    if (available < 4 + length) return undefined;
    this.#start = s + 4 + length;
    return { slot: b[s + 4]!, batch: b.slice(s + HEADER, this.#start) };
  }

  /** The next frame, or null at the end of the stream. */
  async next(): Promise<ChannelFrame | null> {
    for (;;) {
      const frame = this.#take();
      if (frame) return frame;
      if (this.#start === this.#end) this.#start = this.#end = 0;
      const pending = this.#end - this.#start;
      if (pending >= HEADER) {
        const b = this.#buffer;
        const s = this.#start;
        const length = (b[s]! | (b[s + 1]! << 8) | (b[s + 2]! << 16) | (b[s + 3]! << 24)) >>> 0;
        // #take() checked the length. A frame larger than the buffer is read straight into a
        // buffer of its own: its batch is never copied (a 16 MiB copy holds the loop ~20 ms).
        if (4 + length > b.length) return await this.#readLarge(b[s + 4]!, length - 1);
      }
      if (this.#buffer.length - this.#end < 4096 || this.#end === this.#buffer.length) {
        this.#buffer.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      }
      if (!await this.#fill()) return null;
    }
  }

  /** Reads more into the buffer; false at the end of the stream (between frames). */
  async #fill(): Promise<boolean> {
    const n = await this.#conn.read(this.#buffer.subarray(this.#end));
    if (n === null || n === 0) {
      if (this.#start !== this.#end) throw new ChannelError("channel closed mid-frame");
      return false;
    }
    this.#end += n;
    return true;
  }

  /** The rest of a frame whose header is buffered, read into a batch buffer of its own. */
  async #readLarge(slot: number, size: number): Promise<ChannelFrame> {
    const batch = new Uint8Array(size);
    const begin = this.#start + HEADER;
    let filled = this.#end - begin;
    batch.set(this.#buffer.subarray(begin, this.#end));
    this.#start = this.#end = 0;
    while (filled < size) {
      // Reads at most what the frame still lacks: the next frame stays on the socket.
      const n = await this.#conn.read(batch.subarray(filled));
      if (n === null || n === 0) throw new ChannelError("channel closed mid-frame");
      filled += n;
    }
    return { slot, batch };
  }
}

// A write buffer larger than this after a big frame is not kept for the next ones.
const KEPT_BUFFER = 1024 * 1024;
const INITIAL_BUFFER = 64 * 1024;

/**
 * Writes channel frames, coalescing frames queued while a write is in progress. Each frame is
 * copied once, into a buffer reused from write to write (no allocation per frame).
 */
export class ChannelWriter {
  #conn: Deno.Conn;
  // Frames not yet handed to a write; `#spare` is the buffer of the write before.
  #pending = new Uint8Array(INITIAL_BUFFER);
  #pendingLength = 0;
  #spare: Uint8Array<ArrayBuffer> | null = new Uint8Array(INITIAL_BUFFER);
  #queued = 0;
  #writing = false;
  #failed: Error | null = null;
  /** Called once if a write fails (the other side is gone). */
  onError: (error: Error) => void = () => {};

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Bytes waiting to be written. */
  get backlog(): number {
    return this.#queued;
  }

  /** Queues one frame (`batch` is copied: the caller may reuse it at once). */
  send(slot: number, batch: Uint8Array): void {
    if (this.#failed) return;
    const size = HEADER + batch.length;
    const at = this.#pendingLength;
    if (at + size > this.#pending.length) {
      let capacity = this.#pending.length * 2;
      while (capacity < at + size) capacity *= 2;
      const grown = new Uint8Array(capacity);
      grown.set(this.#pending.subarray(0, at));
      this.#pending = grown;
    }
    const b = this.#pending;
    const length = batch.length + 1;
    b[at] = length & 0xff;
    b[at + 1] = (length >>> 8) & 0xff;
    b[at + 2] = (length >>> 16) & 0xff;
    b[at + 3] = length >>> 24;
    b[at + 4] = slot;
    b.set(batch, at + HEADER);
    this.#pendingLength = at + size;
    this.#queued += size;
    if (!this.#writing) this.#drain();
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#pendingLength) {
        const buffer = this.#pending;
        const bytes = buffer.subarray(0, this.#pendingLength);
        // Frames sent while this write is in progress go to the other buffer.
        this.#pending = this.#spare ?? new Uint8Array(INITIAL_BUFFER);
        this.#pendingLength = 0;
        this.#spare = null;
        let written = 0;
        while (written < bytes.length) written += await this.#conn.write(bytes.subarray(written));
        this.#queued -= bytes.length;
        this.#spare = buffer.length > KEPT_BUFFER ? null : buffer;
      }
    } catch (error) {
      this.#failed = error as Error;
      this.#pendingLength = 0;
      this.onError(this.#failed);
    } finally {
      this.#writing = false;
    }
  }
}
