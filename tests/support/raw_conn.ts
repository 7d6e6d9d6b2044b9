/**
 * A byte-level client for the reliability suites: it writes exactly the bytes a test gives it
 * (split into pieces where asked), can half-close its side, and reads frames with a timeout
 * so that a test tells "the runner answered", "the runner closed the connection" and "the runner
 * said nothing" apart.
 *
 * @module
 */

/** One frame as read from the runner. */
export interface RawFrame {
  type: number;
  payload: Uint8Array;
}

/** What the runner did next on a connection. */
export type Next = RawFrame | "eof" | "timeout";

/** A frame's bytes: type, 24-bit big-endian length, payload. */
export function rawFrame(type: number, payload: Uint8Array, length = payload.length): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  out[0] = type;
  out[1] = (length >>> 16) & 0xff;
  out[2] = (length >>> 8) & 0xff;
  out[3] = length & 0xff;
  out.set(payload, 4);
  return out;
}

/** Concatenates byte arrays. */
export { concatBytes as concat } from "../../api/bytes.ts";

/** A test's raw connection to the runner. */
export class RawConn {
  #conn: Deno.UnixConn;
  #buffer = new Uint8Array(64 * 1024);
  #chunk = new Uint8Array(256 * 1024);
  #start = 0;
  #end = 0;
  #eof = false;
  #pending: Promise<number | null> | null = null;
  #closed = false;

  private constructor(conn: Deno.UnixConn) {
    this.#conn = conn;
  }

  /** Connects to a runner's socket. */
  static async connect(path: string): Promise<RawConn> {
    return new RawConn(await Deno.connect({ transport: "unix", path }));
  }

  /** Writes every byte. */
  async write(bytes: Uint8Array): Promise<void> {
    let written = 0;
    while (written < bytes.length) written += await this.#conn.write(bytes.subarray(written));
  }

  /**
   * Writes `bytes` in pieces ending at `cuts` (sorted offsets), waiting `pauseMs` between
   * pieces so that the runner sees them in separate reads.
   */
  async writeSplit(bytes: Uint8Array, cuts: readonly number[], pauseMs = 1): Promise<void> {
    let from = 0;
    for (const cut of [...cuts, bytes.length]) {
      if (cut <= from) continue;
      await this.write(bytes.subarray(from, cut));
      from = cut;
      if (from < bytes.length && pauseMs >= 0) await pause(pauseMs);
    }
  }

  /** Writes `bytes` in pieces of `size` bytes, without pauses. */
  async writeInPieces(bytes: Uint8Array, size: number): Promise<void> {
    for (let at = 0; at < bytes.length; at += size) {
      await this.write(bytes.subarray(at, Math.min(bytes.length, at + size)));
    }
  }

  /** Half-closes the connection: the runner reads end of stream, and may still answer. */
  async closeWrite(): Promise<void> {
    await this.#conn.closeWrite();
  }

  /** The next frame, end of stream, or "timeout" when nothing complete arrives in time. */
  async next(timeoutMs = 15_000): Promise<Next> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const available = this.#end - this.#start;
      if (available >= 4) {
        const b = this.#buffer;
        const s = this.#start;
        const length = (b[s + 1]! << 16) | (b[s + 2]! << 8) | b[s + 3]!;
        if (available >= 4 + length) {
          this.#start += 4 + length;
          return { type: b[s]!, payload: b.slice(s + 4, s + 4 + length) };
        }
        this.#reserve(4 + length);
      } else {
        this.#reserve(4);
      }
      if (this.#eof) {
        if (available) {
          throw new Error(`the runner closed the connection mid-frame (${available} bytes)`);
        }
        return "eof";
      }
      const left = deadline - performance.now();
      if (left <= 0 || !await this.#fill(left)) return "timeout";
    }
  }

  /** The next frame; throws when the connection ends or nothing arrives in time. */
  async frame(timeoutMs = 15_000): Promise<RawFrame> {
    const next = await this.next(timeoutMs);
    if (next === "eof") throw new Error("the runner closed the connection instead of answering");
    if (next === "timeout") throw new Error(`no frame from the runner within ${timeoutMs} ms`);
    return next;
  }

  #reserve(size: number): void {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#buffer.length - this.#start >= size) return;
    const target = this.#buffer.length >= size ? this.#buffer : new Uint8Array(size);
    target.set(this.#buffer.subarray(this.#start, this.#end));
    this.#buffer = target;
    this.#end -= this.#start;
    this.#start = 0;
  }

  /** Reads once; false on timeout (the read stays pending for the next call). */
  async #fill(timeoutMs: number): Promise<boolean> {
    // A read of its own buffer, so a read left pending by a timeout never writes into a buffer
    // that has been replaced meanwhile.
    this.#pending ??= this.#conn.read(this.#chunk).catch((error) => {
      if (
        error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BadResource
      ) {
        return null;
      }
      throw error;
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    try {
      const n = await Promise.race([this.#pending, timeout]);
      if (n === "timeout") return false;
      this.#pending = null;
      if (n === null || n === 0) {
        this.#eof = true;
        return true;
      }
      if (this.#buffer.length - this.#end < n) {
        const grown = new Uint8Array(
          Math.max(2 * this.#buffer.length, this.#end - this.#start + n),
        );
        grown.set(this.#buffer.subarray(this.#start, this.#end));
        this.#buffer = grown;
        this.#end -= this.#start;
        this.#start = 0;
      }
      this.#buffer.set(this.#chunk.subarray(0, n), this.#end);
      this.#end += n;
      return true;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes the connection. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** Waits `ms` milliseconds. */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
