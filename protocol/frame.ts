/**
 * Framing of the ext-plugin protocol (PROTOCOL.md §2): one byte of RPC type, a 24-bit big-endian
 * payload length, then one finished FlatBuffer.
 *
 * @module
 */

/** RPC types of the ext-plugin protocol (apache/apisix:apisix/constants.lua). */
export const RpcType = {
  Error: 0,
  PrepareConf: 1,
  HttpReqCall: 2,
  ExtraInfo: 3,
  HttpRespCall: 4,
} as const;

/** One of the {@linkcode RpcType} values. */
export type RpcType = typeof RpcType[keyof typeof RpcType];

/** Error codes carried by an `ErrResp` in a type-0 frame. */
export const ErrCode = {
  BadRequest: 0,
  ServiceUnavailable: 1,
  ConfTokenNotFound: 2,
} as const;

/** One of the {@linkcode ErrCode} values. */
export type ErrCode = typeof ErrCode[keyof typeof ErrCode];

/** Bytes in a frame header. */
export const HEADER_SIZE = 4;

/** The largest payload a 24-bit length can describe: 16,777,215 bytes. */
export const MAX_PAYLOAD = 0xff_ffff;

/** Writes a frame header for `type` and `length` into `target` at `offset`. */
export function writeHeader(target: Uint8Array, offset: number, type: number, length: number) {
  if (length < 1 || length > MAX_PAYLOAD) {
    throw new RangeError(`Cannot frame a payload of ${length} bytes: it must be 1..${MAX_PAYLOAD}`);
  }
  target[offset] = type;
  target[offset + 1] = length >>> 16;
  target[offset + 2] = (length >>> 8) & 0xff;
  target[offset + 3] = length & 0xff;
}

/** Returns a new frame holding `payload` under `type`. */
export function encodeFrame(type: number, payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(HEADER_SIZE + payload.length);
  writeHeader(frame, 0, type, payload.length);
  frame.set(payload, HEADER_SIZE);
  return frame;
}

/** Something bytes can be written to, such as a `Deno.Conn`. */
export interface Writer {
  write(bytes: Uint8Array): Promise<number>;
}

/** Writes every byte of `bytes`, looping over short writes (PROTOCOL.md §2.1). */
export async function writeAll(writer: Writer, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    written += await writer.write(written === 0 ? bytes : bytes.subarray(written));
  }
}
