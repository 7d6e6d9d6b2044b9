/**
 * The messages between the runner and a plugin's worker (through a sandbox process, or directly
 * for inline plugins). Several messages travel together as one batch: a byte string of
 * `[u32 length][u8 kind][fields]` records, little-endian, `length` counting kind and fields.
 *
 * Everything a worker sends is untrusted: the runner reads it with bounds checks
 * ({@linkcode readMessages}) and treats anything malformed as a protocol violation.
 *
 * @module
 */
import { ByteReader, ByteWriter } from "../api/bytes.ts";

/** Message kinds. Below 16: runner → worker; from 16: worker → runner. */
export const Kind = {
  /** `u32 confId`, rest: the conf string (UTF-8). Run `parseConf`. */
  Conf: 1,
  /** `u32 confId`. Forget a conf. */
  DropConf: 2,
  /**
   * `u32 callId, u32 confId, u8 phase, u32 n, n request bytes, u8 count`, `count` prefetched
   * answers (`u8 info, u16 n, n name bytes, u8 present, u32 n, n answer bytes`), rest: the
   * overlay patch.
   */
  Call: 3,
  /** `u32 callId, u32 askId, u8 present`, rest: the answer bytes. */
  Answer: 4,
  /** `u32 callId`. The call was answered without the worker (deadline, client gone). */
  Cancel: 5,
  /** `u8 flags` (1 requestFilter, 2 responseFilter), rest: the plugin's name. */
  Ready: 16,
  /** Rest: why the plugin module could not be loaded. */
  LoadFailed: 17,
  /** `u32 confId`, then the conf's prefetch list (see `api/prefetch.ts`). */
  ConfOk: 18,
  /** `u32 confId`, rest: the reason. */
  ConfFailed: 19,
  /** `u32 callId`, rest: the patch. */
  Result: 20,
  /** `u32 callId, u8 cause` (see {@linkcode FailCause}), rest: the error text. */
  Failed: 21,
  /** `u32 callId, u32 askId, u8 info` (1 var, 2 request body, 3 response body), rest: name. */
  Ask: 22,
  /** `u8 level` (see {@linkcode LogLevel}), rest: the line. */
  Log: 23,
  /** A batch was taken in; lets the runner send the next one. */
  Ack: 24,
} as const;

/** Call phases. */
export const Phase = { Request: 0, Response: 1 } as const;

/** Why a call failed inside the worker. */
export const FailCause = { Error: 0, Denied: 1, UnknownConf: 2 } as const;

/** ExtraInfo kinds a worker can ask for, as numbered on the wire. */
export const Info = { Var: 1, ReqBody: 2, RespBody: 3 } as const;

/** Levels of plugin log lines. */
export const LogLevel = { Debug: 0, Info: 1, Warn: 2, Error: 3 } as const;

/** Appends messages to a batch. */
export class BatchWriter {
  readonly out: ByteWriter;
  #start = -1;

  constructor(capacity = 1024) {
    this.out = new ByteWriter(capacity);
  }

  /** Starts a message of `kind`; write its fields to `out`, then call {@linkcode end}. */
  begin(kind: number): ByteWriter {
    this.#start = this.out.length;
    return this.out.u32(0).u8(kind);
  }

  /** Finishes the message begun last. */
  end(): void {
    this.out.patchU32(this.#start, this.out.length - this.#start - 4);
    this.#start = -1;
  }

  /**
   * Drops the message begun last and not ended (writing it threw half-way), so the batch stays
   * well formed; does nothing when no message is open.
   */
  abort(): void {
    if (this.#start < 0) return;
    this.out.truncate(this.#start);
    this.#start = -1;
  }

  /** Bytes in the batch. */
  get length(): number {
    return this.out.length;
  }

  /** Takes the batch (a copy in its own ArrayBuffer) and starts a new one. */
  take(): Uint8Array<ArrayBuffer> {
    const bytes = this.out.take();
    this.out.reset();
    return bytes;
  }
}

/**
 * Calls `onMessage` for each message of a batch; throws ByteFormatError if it is malformed.
 * The reader handed to `onMessage` is limited to the message and reused for the next one.
 */
export function readMessages(
  batch: Uint8Array,
  onMessage: (kind: number, body: ByteReader) => void,
): void {
  for (const [kind, body] of messagesOf(batch)) onMessage(kind, body);
}

/**
 * The messages of a batch, one at a time, as `[kind, body]`; throws ByteFormatError when it
 * reaches a malformed one. The body reader is reused for the next message.
 */
export function* messagesOf(batch: Uint8Array): Generator<[number, ByteReader], void, void> {
  const reader = new ByteReader(batch);
  let next = 0;
  while (next < batch.length) {
    reader.offset = next;
    reader.end = batch.length;
    const length = reader.u32();
    const start = reader.offset;
    reader.raw(length); // bounds check of the whole message
    next = start + length;
    reader.offset = start;
    reader.end = next;
    yield [reader.u8(), reader];
  }
}
