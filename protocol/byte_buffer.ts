/**
 * FlatBuffers `ByteBuffer`s for the hot path. The library's constructor makes a new
 * `TextDecoder` for every buffer, and a call reads one or two buffers: in the runner's CPU
 * profile that constructor cost more than verifying the whole request. The decoder is only
 * used to read strings as `string`, and decoding without `stream` keeps no state between
 * calls, so every buffer made here shares one.
 *
 * @module
 */
import { ByteBuffer } from "flatbuffers";

const sharedDecoder = new TextDecoder();

/** The fields the library's constructor sets, in its order (the same hidden class). */
interface ByteBufferFields {
  bytes_: Uint8Array;
  position_: number;
  text_decoder_: TextDecoder;
}

/** A `ByteBuffer` over `bytes`, read from position 0, as `new ByteBuffer(bytes)` makes. */
export function byteBuffer(bytes: Uint8Array): ByteBuffer {
  const buffer = Object.create(ByteBuffer.prototype) as ByteBufferFields;
  buffer.bytes_ = bytes;
  buffer.position_ = 0;
  buffer.text_decoder_ = sharedDecoder;
  return buffer as unknown as ByteBuffer;
}
