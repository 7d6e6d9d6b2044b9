/**
 * What the fuzz suites send: fast-check arbitraries for valid ext-plugin messages (any byte in
 * any text field), for mutations of them, and for byte streams of frames; plus the expected
 * outcome of a frame the runner receives between exchanges (the oracle the socket properties
 * compare the runner's replies with).
 *
 * @module
 */
import fc from "fast-check";
import {
  EXTRA_INFO_RESP,
  HTTP_REQ_CALL_REQ,
  HTTP_RESP_CALL_REQ,
  MalformedPayloadError,
  PREPARE_CONF_REQ,
  type TableShape,
  verifyRoot,
} from "../../protocol/verify.ts";
import {
  encodeExtraInfoResp,
  encodePrepareConf,
  encodeReqCall,
  encodeRespCall,
  type Entry,
  latin1,
  type ReqCall,
  type RespCall,
} from "../support/apisix.ts";
import { concat, rawFrame } from "../support/raw_conn.ts";
import { ByteBuffer } from "flatbuffers";
import { PrepareConfReq } from "../../protocol/gen/prepare_conf_req.ts";
import { MAX_CONF_ENTRIES } from "../../runner/apisix/connection.ts";

/** Fuzzing limits: the CI run keeps payloads small, long runs go up to the protocol limit. */
export interface FuzzSettings {
  /** Largest payload a generated frame may have (at most 16,777,215). */
  maxPayload: number;
}

/** Settings of the bounded run in `deno task test`. */
export const CI_SETTINGS: FuzzSettings = { maxPayload: 80_000 };

/** Settings of `deno task fuzz`. */
export const LONG_SETTINGS: FuzzSettings = { maxPayload: 0xff_ffff };

/** The largest ExtraInfo answer body whose frame fits the 16,777,215-byte limit. */
export function maxAnswerBody(maxPayload = 0xff_ffff): number {
  // The encoding's overhead depends only on the body length modulo 4.
  let best = 0;
  for (let n = 1000; n < 1004; n++) {
    const overhead = encodeExtraInfoResp(new Uint8Array(n)).length - n;
    const candidate = maxPayload - overhead;
    const aligned = candidate - ((candidate - n) % 4 + 4) % 4;
    if (aligned + overhead <= maxPayload) best = Math.max(best, aligned);
  }
  return best;
}

/** The four inbound payload shapes, by RPC type (3 = an ExtraInfo answer). */
export const SHAPES: Readonly<Record<1 | 2 | 3 | 4, TableShape>> = {
  1: PREPARE_CONF_REQ,
  2: HTTP_REQ_CALL_REQ,
  3: EXTRA_INFO_RESP,
  4: HTTP_RESP_CALL_REQ,
};

/** Whether the runner's verifier accepts `payload` as `shape`; anything but a verdict throws. */
export function verifies(payload: Uint8Array, shape: TableShape): boolean {
  try {
    verifyRoot(payload, shape);
    return true;
  } catch (error) {
    if (error instanceof MalformedPayloadError) return false;
    throw error;
  }
}

/** Any bytes as a Latin-1 string (the support encoders write one byte per character). */
export const byteText = (maxLength: number): fc.Arbitrary<string> =>
  fc.uint8Array({ maxLength }).map(latin1);

/** Bytes that are not valid UTF-8 somewhere in the middle. */
export const notUtf8: fc.Arbitrary<string> = fc.tuple(
  byteText(8),
  fc.constantFrom("\xff", "\xfe\xff", "\xc3", "\xe2\x82", "\x80", "\xed\xa0\x80", "\xf8\x88"),
  byteText(8),
).map(([a, b, c]) => a + b + c);

const text = (maxLength: number) =>
  fc.oneof({ weight: 3, arbitrary: byteText(maxLength) }, { weight: 1, arbitrary: notUtf8 });

/** A name/value entry; about one in five has no value field. */
export const entry = (maxLength = 24): fc.Arbitrary<Entry> =>
  fc.tuple(text(maxLength), fc.option(text(maxLength), { nil: null, freq: 5 }));

/** A valid HTTPReqCall description; fields left out are absent on the wire. */
export const reqCall = (token?: number): fc.Arbitrary<ReqCall> =>
  fc.record({
    id: fc.nat({ max: 0xffff_ffff }),
    srcIp: fc.oneof(
      fc.array(fc.nat(255), { minLength: 4, maxLength: 4 }),
      fc.array(fc.nat(255), { minLength: 16, maxLength: 16 }),
    ),
    method: fc.nat(14),
    path: text(64),
    args: fc.array(entry(), { maxLength: 12 }),
    headers: fc.array(entry(), { maxLength: 24 }),
    token: token === undefined ? fc.nat({ max: 0xffff_ffff }) : fc.constant(token),
  }, { requiredKeys: ["token"] });

/** A valid HTTPRespCall description. */
export const respCall = (token?: number): fc.Arbitrary<RespCall> =>
  fc.record({
    id: fc.nat({ max: 0xffff_ffff }),
    status: fc.nat(999),
    headers: fc.array(entry(), { maxLength: 24 }),
    token: token === undefined ? fc.nat({ max: 0xffff_ffff }) : fc.constant(token),
  }, { requiredKeys: ["token"] });

/** A valid PrepareConf: a conf list (or none) and a key (or none). */
export const prepareConf: fc.Arbitrary<{ conf: Entry[] | null; key: string | undefined }> = fc
  .record({
    conf: fc.option(
      fc.array(fc.tuple(byteText(16), fc.option(byteText(40), { nil: null })), { maxLength: 6 }),
      { nil: null },
    ),
    // The support encoder writes the key as UTF-8 text (APISIX's keys are ASCII).
    key: fc.option(fc.string({ maxLength: 40 }), { nil: undefined }),
  });

/** A valid payload of one of the four inbound shapes, with its RPC type. */
export const validPayload: fc.Arbitrary<{ type: 1 | 2 | 3 | 4; payload: Uint8Array }> = fc.oneof(
  prepareConf.map(({ conf, key }) => ({
    type: 1 as const,
    payload: encodePrepareConf(conf, key),
  })),
  reqCall().map((call) => ({ type: 2 as const, payload: encodeReqCall(call) })),
  fc.option(fc.uint8Array({ maxLength: 300 }), { nil: null }).map((result) => ({
    type: 3 as const,
    payload: encodeExtraInfoResp(result),
  })),
  respCall().map((call) => ({ type: 4 as const, payload: encodeRespCall(call) })),
);

/** Values that make interesting offsets and lengths. */
const edgeU32 = (size: number) =>
  fc.constantFrom(
    0,
    1,
    3,
    4,
    size - 4,
    size - 1,
    size,
    size + 1,
    size + 4,
    0x7fff,
    0x8000,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffc,
    0xffff_ffff,
  );

/** One way to damage a payload. */
export type Mutation =
  | { kind: "byte"; at: number; value: number }
  | { kind: "u32"; at: number; value: number }
  | { kind: "truncate"; length: number }
  | { kind: "extend"; bytes: Uint8Array };

/** A list of mutations for a payload of `size` bytes. */
export const mutations = (size: number): fc.Arbitrary<Mutation[]> =>
  fc.array(
    fc.oneof(
      fc.record({
        kind: fc.constant("byte" as const),
        at: fc.nat(Math.max(0, size - 1)),
        value: fc.nat(255),
      }),
      fc.record({
        kind: fc.constant("u32" as const),
        at: fc.nat(Math.max(0, Math.floor(size / 4) - 1)).map((i) => i * 4),
        value: fc.oneof(edgeU32(size), fc.nat({ max: 0xffff_ffff })),
      }),
      fc.record({ kind: fc.constant("truncate" as const), length: fc.nat(size) }),
      fc.record({ kind: fc.constant("extend" as const), bytes: fc.uint8Array({ maxLength: 64 }) }),
    ),
    { minLength: 1, maxLength: 4 },
  );

/** Applies mutations to a copy of `payload`. */
export function mutate(payload: Uint8Array, list: readonly Mutation[]): Uint8Array {
  let out: Uint8Array = payload.slice();
  for (const m of list) {
    if (m.kind === "byte" && m.at < out.length) out[m.at] = m.value;
    else if (m.kind === "u32" && m.at + 4 <= out.length) {
      new DataView(out.buffer, out.byteOffset).setUint32(m.at, m.value >>> 0, true);
    } else if (m.kind === "truncate") out = out.slice(0, Math.min(m.length, out.length));
    else if (m.kind === "extend") out = concat([out, m.bytes]);
  }
  return out;
}

/** A payload length: mostly small, sometimes across the reader's 64 KiB buffer, rarely huge. */
export const payloadLength = (settings: FuzzSettings): fc.Arbitrary<number> =>
  fc.oneof(
    { weight: 20, arbitrary: fc.nat(Math.min(300, settings.maxPayload)) },
    {
      weight: 3,
      arbitrary: fc.integer({ min: 0, max: Math.min(settings.maxPayload, 140_000) }),
    },
    {
      weight: 1,
      arbitrary: fc.integer({
        min: Math.max(0, settings.maxPayload - 16),
        max: settings.maxPayload,
      }),
    },
  );

/** One frame with any type and random payload bytes of a consistent length. */
export const randomFrame = (settings: FuzzSettings): fc.Arbitrary<Uint8Array> =>
  fc.tuple(fc.nat(255), payloadLength(settings), fc.nat()).map(([type, length, seed]) =>
    rawFrame(type, pseudoRandomBytes(length, seed))
  );

/** Cheap deterministic bytes for big payloads (fast-check would take long to build 16 MiB). */
export function pseudoRandomBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (seed | 0) || 0x9e3779b9;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A byte stream for the runner: frames of random, valid and damaged payloads, and garbage. */
export const byteStream = (settings: FuzzSettings): fc.Arbitrary<Uint8Array> =>
  fc.array(
    fc.oneof(
      { weight: 3, arbitrary: randomFrame(settings) },
      { weight: 3, arbitrary: validPayload.map(({ type, payload }) => rawFrame(type, payload)) },
      {
        weight: 3,
        arbitrary: validPayload.chain(({ type, payload }) =>
          mutations(payload.length).map((list) => rawFrame(type, mutate(payload, list)))
        ),
      },
      { weight: 1, arbitrary: fc.nat(255).map((type) => rawFrame(type, new Uint8Array())) },
      { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 40 }) },
    ),
    { maxLength: 8 },
  ).map(concat);

/** What the runner must answer to a frame that arrives between exchanges. */
export type Expected =
  | { type: 0; code: 0 | 1 | 2 }
  | { type: 1 }
  | { type: 2 | 4 };

/**
 * The replies a stream of frames sent between exchanges must get, in order, and whether it ends
 * in a partial frame. A call naming an unknown token is answered CONF_TOKEN_NOT_FOUND; the
 * oracle assumes no call in the stream names a token in `known` (tests use random tokens, which
 * is true with overwhelming probability, and check it).
 */
export function expectedReplies(
  stream: Uint8Array,
  known: ReadonlySet<number> = new Set(),
): { replies: Expected[]; truncated: boolean; knownTokenUsed: boolean } {
  const replies: Expected[] = [];
  let at = 0;
  let knownTokenUsed = false;
  while (stream.length - at >= 4) {
    const type = stream[at]!;
    const length = (stream[at + 1]! << 16) | (stream[at + 2]! << 8) | stream[at + 3]!;
    if (stream.length - at - 4 < length) break;
    const payload = stream.subarray(at + 4, at + 4 + length);
    at += 4 + length;
    if (type === 1) {
      // A conf list longer than the runner's limit is refused like a malformed one.
      const ok = verifies(payload, PREPARE_CONF_REQ) &&
        PrepareConfReq.getRootAsPrepareConfReq(new ByteBuffer(payload)).confLength() <=
          MAX_CONF_ENTRIES;
      replies.push(ok ? { type: 1 } : { type: 0, code: 0 });
    } else if (type === 2 || type === 4) {
      const shape = type === 2 ? HTTP_REQ_CALL_REQ : HTTP_RESP_CALL_REQ;
      if (!verifies(payload, shape)) {
        replies.push({ type: 0, code: 0 });
        continue;
      }
      const token = tokenOf(payload, type);
      if (known.has(token)) knownTokenUsed = true;
      replies.push({ type: 0, code: 2 });
    } else {
      replies.push({ type: 0, code: 0 });
    }
  }
  return { replies, truncated: at < stream.length, knownTokenUsed };
}

/** The conf token of a verified call payload (field 6 of a request, 3 of a response). */
export function tokenOf(payload: Uint8Array, type: 2 | 4): number {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const table = view.getUint32(0, true);
  const vtable = table - view.getInt32(table, true);
  const id = type === 2 ? 6 : 3;
  const vtableSize = view.getUint16(vtable, true);
  if (4 + 2 * id >= vtableSize) return 0;
  const field = view.getUint16(vtable + 4 + 2 * id, true);
  return field === 0 ? 0 : view.getUint32(table + field, true);
}
