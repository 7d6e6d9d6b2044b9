/**
 * Fuzz targets that run inside the test process: the frame reader over scripted reads, and the
 * verifier together with the generated decoders. Each target is a fast-check property; the CI
 * suites run them with fixed seeds and few runs, `deno task fuzz` runs them for minutes.
 *
 * @module
 */
import fc from "fast-check";
import { deepEqual, equal, ok } from "node:assert/strict";
import {
  type Frame,
  FrameReader,
  type Reader,
  TruncatedFrameError,
} from "../../protocol/frame_reader.ts";
import { MalformedPayloadError, verifyRoot } from "../../protocol/verify.ts";
import { decodeUtf8Lossless, encodeUtf8Lossless } from "../../api/bytes.ts";
import {
  encodeExtraInfoResp,
  encodePrepareConf,
  encodeReqCall,
  encodeRespCall,
  type Entry,
  latin1,
} from "../support/apisix.ts";
import { concat, rawFrame } from "../support/raw_conn.ts";
import {
  type FuzzSettings,
  mutate,
  mutations,
  payloadLength,
  prepareConf,
  pseudoRandomBytes,
  reqCall,
  respCall,
  SHAPES,
  validPayload,
} from "./messages.ts";
import {
  OutOfBoundsRead,
  strictExtraInfoResp,
  strictPrepareConf,
  strictReqCall,
  strictRespCall,
} from "./strict_decode.ts";

/** A property the fuzzer can run with any seed and number of runs. */
export interface FuzzTarget<Context = void> {
  /** What it checks. */
  name: string;
  /** Runs of the bounded CI suite. */
  ciRuns: number;
  /** Builds the property. */
  property(settings: FuzzSettings, context: Context): fc.IRawProperty<unknown>;
}

/** Hands out a byte stream in the pieces a test chose, one piece (at most) per read. */
export class ScriptedReader implements Reader {
  #pieces: Uint8Array[];
  reads = 0;

  constructor(pieces: Uint8Array[]) {
    this.#pieces = pieces.filter((p) => p.length > 0);
  }

  /** Splits `bytes` at `cuts`. */
  static split(bytes: Uint8Array, cuts: readonly number[]): ScriptedReader {
    const pieces: Uint8Array[] = [];
    let from = 0;
    for (const cut of [...cuts].sort((a, b) => a - b)) {
      pieces.push(bytes.subarray(from, cut));
      from = cut;
    }
    pieces.push(bytes.subarray(from));
    return new ScriptedReader(pieces);
  }

  read(buffer: Uint8Array): Promise<number | null> {
    this.reads++;
    const piece = this.#pieces[0];
    if (!piece) return Promise.resolve(null);
    const n = Math.min(piece.length, buffer.length);
    buffer.set(piece.subarray(0, n));
    if (n === piece.length) this.#pieces.shift();
    else this.#pieces[0] = piece.subarray(n);
    return Promise.resolve(n);
  }
}

/** Reads every frame the way a connection does, copying each payload before the next read. */
export async function readAll(reader: FrameReader): Promise<{ frames: Frame[]; error: unknown }> {
  const frames: Frame[] = [];
  try {
    for (;;) {
      const frame = reader.tryNext() ?? await reader.next();
      if (!frame) return { frames, error: null };
      frames.push({ type: frame.type, payload: frame.payload.slice() });
    }
  } catch (error) {
    return { frames, error };
  }
}

/** A frame description for the reader properties. */
interface FrameSpec {
  type: number;
  payload: Uint8Array;
}

const frameSpec = (settings: FuzzSettings): fc.Arbitrary<FrameSpec> =>
  fc.tuple(
    fc.nat(255),
    payloadLength({ maxPayload: Math.min(settings.maxPayload, 300_000) }),
    fc.nat(),
  )
    .map(([type, length, seed]) => ({ type, payload: pseudoRandomBytes(length, seed) }));

function streamOf(frames: readonly FrameSpec[]): Uint8Array {
  return concat(frames.map((f) => rawFrame(f.type, f.payload)));
}

function sameFrames(got: readonly Frame[], want: readonly FrameSpec[]): void {
  equal(got.length, want.length, "number of frames");
  got.forEach((frame, i) => {
    equal(frame.type, want[i]!.type, `type of frame ${i}`);
    equal(frame.payload.length, want[i]!.payload.length, `length of frame ${i}`);
    ok(frame.payload.every((b, j) => b === want[i]!.payload[j]), `bytes of frame ${i}`);
  });
}

const cutsOf = (length: number) =>
  fc.uniqueArray(fc.integer({ min: 1, max: Math.max(1, length - 1) }), { maxLength: 40 });

/** Frames split at arbitrary points, several per read, any buffer size: all arrive intact. */
export const readerSplits: FuzzTarget = {
  name: "frame reader: frames split anywhere arrive intact and in order",
  ciRuns: 150,
  property: (settings) =>
    fc.asyncProperty(
      fc.array(frameSpec(settings), { maxLength: 6 }).chain((frames) => {
        const stream = streamOf(frames);
        return fc.tuple(
          fc.constant(frames),
          cutsOf(stream.length),
          fc.oneof(fc.integer({ min: 4, max: 300 }), fc.constant(64 * 1024)),
        );
      }),
      async ([frames, cuts, bufferSize]) => {
        const stream = streamOf(frames);
        const { frames: got, error } = await readAll(
          new FrameReader(ScriptedReader.split(stream, cuts), bufferSize),
        );
        equal(error, null);
        sameFrames(got, frames);
      },
    ),
};

/** A stream cut anywhere: complete frames arrive, then a clean end or TruncatedFrameError. */
export const readerTruncation: FuzzTarget = {
  name: "frame reader: a stream cut anywhere ends in the frames before the cut and a clear error",
  ciRuns: 150,
  property: (settings) =>
    fc.asyncProperty(
      fc.array(frameSpec(settings), { minLength: 1, maxLength: 5 }).chain((frames) => {
        const length = streamOf(frames).length;
        return fc.tuple(fc.constant(frames), fc.nat(length - 1), cutsOf(length));
      }),
      async ([frames, end, cuts]) => {
        const stream = streamOf(frames).subarray(0, end);
        const { frames: got, error } = await readAll(
          new FrameReader(ScriptedReader.split(stream, cuts.filter((c) => c < end))),
        );
        let complete = 0;
        let boundary = 0;
        for (const frame of frames) {
          if (boundary + 4 + frame.payload.length > end) break;
          boundary += 4 + frame.payload.length;
          complete++;
        }
        sameFrames(got, frames.slice(0, complete));
        if (boundary === end) equal(error, null, "a cut between frames is a clean end");
        else ok(error instanceof TruncatedFrameError, `expected TruncatedFrameError, got ${error}`);
      },
    ),
};

/** Random payloads with random headers: never a crash, and the frames are what the bytes say. */
export const readerGarbage: FuzzTarget = {
  name: "frame reader: random bytes are split exactly as their headers say",
  ciRuns: 150,
  property: () =>
    fc.asyncProperty(
      fc.uint8Array({ maxLength: 2000 }).chain((bytes) =>
        fc.tuple(fc.constant(bytes), cutsOf(bytes.length))
      ),
      async ([bytes, cuts]) => {
        const { frames, error } = await readAll(new FrameReader(ScriptedReader.split(bytes, cuts)));
        let at = 0;
        for (const frame of frames) {
          equal(frame.type, bytes[at]);
          at += 4 + frame.payload.length;
        }
        if (at === bytes.length) equal(error, null);
        else ok(error instanceof TruncatedFrameError, `expected TruncatedFrameError, got ${error}`);
      },
    ),
};

/** Valid messages of every shape verify and decode to exactly what was encoded. */
export const verifierAcceptsValid: FuzzTarget = {
  name: "verifier: every valid message verifies and decodes to what was encoded",
  ciRuns: 200,
  property: () =>
    fc.property(
      fc.oneof(
        prepareConf.map((p) => ({ type: 1 as const, value: p })),
        reqCall().map((c) => ({ type: 2 as const, value: c })),
        fc.option(fc.uint8Array({ maxLength: 300 }), { nil: null }).map((r) => ({
          type: 3 as const,
          value: r,
        })),
        respCall().map((c) => ({ type: 4 as const, value: c })),
      ),
      (message) => {
        const entries = (list: readonly Entry[] | undefined) =>
          (list ?? []).map(([n, v]) => [n, v]);
        if (message.type === 1) {
          const { conf, key } = message.value;
          const payload = encodePrepareConf(conf, key);
          verifyRoot(payload, SHAPES[1]);
          const got = strictPrepareConf(payload);
          deepEqual(got.key, key === undefined ? null : latin1(new TextEncoder().encode(key)));
          deepEqual(got.conf, conf && conf.length ? entries(conf) : null);
        } else if (message.type === 2) {
          const call = message.value;
          const payload = encodeReqCall(call);
          verifyRoot(payload, SHAPES[2]);
          const got = strictReqCall(payload);
          deepEqual(got, {
            id: call.id ?? 0,
            srcIp: call.srcIp ?? null,
            method: call.method ?? 0,
            path: call.path ?? null,
            args: entries(call.args),
            headers: entries(call.headers),
            token: call.token,
          });
        } else if (message.type === 3) {
          const payload = encodeExtraInfoResp(message.value);
          verifyRoot(payload, SHAPES[3]);
          const got = strictExtraInfoResp(payload);
          deepEqual(
            got.result,
            message.value === null ? null : String.fromCharCode(...message.value),
          );
        } else {
          const call = message.value;
          const payload = encodeRespCall(call);
          verifyRoot(payload, SHAPES[4]);
          deepEqual(strictRespCall(payload), {
            id: call.id ?? 0,
            status: call.status ?? 0,
            headers: entries(call.headers),
            token: call.token,
          });
        }
      },
    ),
};

const STRICT = {
  1: strictPrepareConf,
  2: strictReqCall,
  3: strictExtraInfoResp,
  4: strictRespCall,
} as const;

/**
 * The verifier's promise: a payload either fails with MalformedPayloadError, or every read the
 * decoders make stays inside the payload and inside its tables.
 */
function verdictHolds(type: 1 | 2 | 3 | 4, payload: Uint8Array): void {
  let accepted: boolean;
  try {
    verifyRoot(payload, SHAPES[type]);
    accepted = true;
  } catch (error) {
    if (!(error instanceof MalformedPayloadError)) throw error;
    accepted = false;
  }
  if (!accepted) return;
  try {
    STRICT[type](payload);
  } catch (error) {
    if (error instanceof OutOfBoundsRead) {
      throw new Error(`the verifier accepted a payload the decoder overruns: ${error.message}`);
    }
    throw error;
  }
}

/** Damaged valid messages: rejected, or safe to decode. */
export const verifierMutations: FuzzTarget = {
  name: "verifier: damaged messages are rejected or decode inside their bounds",
  ciRuns: 400,
  property: () =>
    fc.property(
      validPayload.chain(({ type, payload }) =>
        fc.tuple(fc.constant(type), fc.constant(payload), mutations(payload.length))
      ),
      ([type, payload, list]) => verdictHolds(type, mutate(payload, list)),
    ),
};

/** Random bytes of every shape: rejected, or safe to decode. */
export const verifierRandom: FuzzTarget = {
  name: "verifier: random bytes are rejected or decode inside their bounds",
  ciRuns: 400,
  property: () =>
    fc.property(
      fc.constantFrom(1 as const, 2 as const, 3 as const, 4 as const),
      fc.uint8Array({ maxLength: 400 }),
      (type, bytes) => verdictHolds(type, bytes),
    ),
};

/**
 * Payloads built from FlatBuffers parts with random offsets: a root and vtable that may point
 * anywhere, field offsets anywhere in 0..0xffff, vectors whose counts run past the end, tables
 * that point back at themselves. Random bytes rarely get past the first check; these do.
 */
export const verifierStructured: FuzzTarget = {
  name: "verifier: tables with hostile offsets are rejected or decode inside their bounds",
  ciRuns: 400,
  property: () =>
    fc.property(
      fc.constantFrom(1 as const, 2 as const, 3 as const, 4 as const),
      fc.record({
        size: fc.integer({ min: 12, max: 40_000 }),
        table: fc.nat(200).map((n) => n * 4),
        vtableDistance: fc.integer({ min: -64, max: 64 }).map((n) => n * 2),
        vtableSize: fc.oneof(fc.nat(24).map((n) => n * 2), fc.constantFrom(0x7ffe, 0x8000, 0xfffe)),
        tableSize: fc.oneof(fc.nat(64), fc.constantFrom(0x7fff, 0x8004, 0x9000, 0xffff)),
        fields: fc.array(
          fc.oneof(fc.nat(64), fc.constantFrom(0, 0x7ffc, 0x8000, 0x8004, 0xfffc)),
          { maxLength: 8 },
        ),
        words: fc.array(fc.tuple(fc.nat(10_000), fc.oneof(fc.nat(64), fc.nat(40_000), fc.nat())), {
          maxLength: 24,
        }),
      }),
      (type, s) => {
        const size = Math.max(s.size, s.table + 8);
        const bytes = new Uint8Array(size);
        const view = new DataView(bytes.buffer);
        const vtable = Math.max(0, s.table - s.vtableDistance - 2 * s.fields.length - 4);
        // Random words first, so that the structure below stays as chosen.
        for (const [at, value] of s.words) {
          if (at * 4 + 4 <= size) view.setUint32(at * 4, value >>> 0, true);
        }
        view.setUint32(0, s.table, true);
        view.setInt32(s.table, s.table - vtable, true);
        if (vtable + 4 + 2 * s.fields.length <= size) {
          view.setUint16(vtable, s.vtableSize, true);
          view.setUint16(vtable + 2, s.tableSize, true);
          s.fields.forEach((f, i) => view.setUint16(vtable + 4 + 2 * i, f, true));
        }
        verdictHolds(type, bytes);
      },
    ),
};

/**
 * Paths and args reach plugins as text and go back as bytes: any bytes, UTF-8 or not, must
 * come back unchanged, and valid UTF-8 must read as the standard decoder reads it.
 */
export const textRoundTrip: FuzzTarget = {
  name: "text: any path or arg bytes decode to text that encodes back to the same bytes",
  ciRuns: 1000,
  property: () =>
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 64 }),
        fc.string({ unit: "grapheme", maxLength: 16 }).map((s) => new TextEncoder().encode(s)),
        fc.array(fc.oneof(
          fc.uint8Array({ maxLength: 4 }),
          fc.constantFrom(
            Uint8Array.of(0xef, 0xbb, 0xbf),
            Uint8Array.of(0xed, 0xa0, 0x80),
            Uint8Array.of(0xf4, 0x90, 0x80, 0x80),
            Uint8Array.of(0xf0, 0x90, 0x80, 0x80),
            Uint8Array.of(0xc0, 0xaf),
          ),
        )).map(concat),
      ),
      (bytes) => {
        const text = decodeUtf8Lossless(bytes);
        deepEqual(encodeUtf8Lossless(text), bytes);
        let standard: string | null = null;
        try {
          standard = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
        } catch {
          // Not UTF-8: the text carries escapes instead.
        }
        if (standard !== null) equal(text, standard);
      },
    ),
};

/** Every in-process target. */
export const INPROC_TARGETS: readonly FuzzTarget[] = [
  readerSplits,
  readerTruncation,
  readerGarbage,
  verifierAcceptsValid,
  verifierMutations,
  verifierRandom,
  verifierStructured,
  textRoundTrip,
];
