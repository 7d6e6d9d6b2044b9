import { deepEqual, equal, rejects } from "node:assert/strict";
import fc from "fast-check";
import { concatBytes as concat } from "../api/bytes.ts";
import { encodeFrame, MAX_PAYLOAD } from "./frame.ts";
import { type Frame, FrameReader, type Reader, TruncatedFrameError } from "./frame_reader.ts";

/**
 * A reader that hands out `chunks` one read at a time, as a socket would: a read returns at most
 * what the caller's buffer holds, keeping the rest for the next read; then end of stream.
 */
class ChunkReader implements Reader {
  reads = 0;
  #chunks: Uint8Array[];

  constructor(chunks: Uint8Array[]) {
    this.#chunks = chunks.filter((chunk) => chunk.length > 0);
  }

  read(buffer: Uint8Array): Promise<number | null> {
    this.reads++;
    const chunk = this.#chunks.shift();
    if (!chunk) return Promise.resolve(null);
    const n = Math.min(chunk.length, buffer.length);
    buffer.set(chunk.subarray(0, n));
    if (n < chunk.length) this.#chunks.unshift(chunk.subarray(n));
    return Promise.resolve(n);
  }
}

/** Splits `bytes` at the given offsets (sorted, deduplicated). */
function splitAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set([0, ...cuts, bytes.length])].sort((a, b) => a - b);
  return points.slice(1).map((end, i) => bytes.subarray(points[i]!, end));
}

function payload(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + seed * 7) & 0xff);
}

/** Reads every frame (copying payloads, which are only valid until the next read). */
async function readAll(reader: FrameReader): Promise<Array<{ type: number; payload: number[] }>> {
  const out: Array<{ type: number; payload: number[] }> = [];
  for (;;) {
    const frame: Frame | null = await reader.next();
    if (!frame) return out;
    out.push({ type: frame.type, payload: [...frame.payload] });
  }
}

Deno.test("FrameReader: a frame split at every possible point reads the same", async () => {
  const frames = [encodeFrame(2, payload(40, 1)), encodeFrame(1, payload(12, 2))];
  const bytes = concat(frames);
  const expected = [{ type: 2, payload: [...payload(40, 1)] }, {
    type: 1,
    payload: [...payload(12, 2)],
  }];
  for (let cut = 1; cut < bytes.length; cut++) {
    deepEqual(await readAll(new FrameReader(new ChunkReader(splitAt(bytes, [cut])))), expected);
  }
  // One byte per read.
  const single = splitAt(bytes, Array.from({ length: bytes.length }, (_, i) => i));
  deepEqual(await readAll(new FrameReader(new ChunkReader(single))), expected);
});

Deno.test("FrameReader: several frames in one read come out in order without more reads", async () => {
  const frames = Array.from({ length: 5 }, (_, i) => encodeFrame(i, payload(12 + i, i)));
  const source = new ChunkReader([concat(frames)]);
  const reader = new FrameReader(source);
  const first = await reader.next();
  equal(first!.type, 0);
  equal(source.reads, 1);
  for (let i = 1; i < 5; i++) {
    const frame = reader.tryNext();
    equal(frame?.type, i);
    deepEqual([...frame!.payload], [...payload(12 + i, i)]);
  }
  equal(reader.tryNext(), undefined);
  equal(reader.buffered, 0);
  equal(await reader.next(), null);
});

Deno.test("FrameReader: a zero-length payload is a frame (answered by the caller, not skipped)", async () => {
  const bytes = concat([new Uint8Array([9, 0, 0, 0]), encodeFrame(1, payload(12, 1))]);
  const frames = await readAll(new FrameReader(new ChunkReader([bytes])));
  deepEqual(frames.map((f) => [f.type, f.payload.length]), [[9, 0], [1, 12]]);
});

Deno.test("FrameReader: frames larger than the buffer, and up to the 16 MiB limit, arrive whole", async () => {
  // A 64-byte buffer makes most frames "large" and exercises compaction for the rest.
  const sizes = [12, 50, 60, 61, 100, 1000, 70_000, 12];
  const frames = sizes.map((size, i) => encodeFrame(i + 1, payload(size, i)));
  const bytes = concat(frames);
  const chunks = splitAt(bytes, Array.from({ length: 60 }, (_, i) => (i * 1237) % bytes.length));
  const got = await readAll(new FrameReader(new ChunkReader(chunks), 64));
  deepEqual(got.map((f) => f.payload.length), sizes);
  got.forEach((f, i) => deepEqual(f.payload, [...payload(sizes[i]!, i)]));

  const max = new Uint8Array(4 + MAX_PAYLOAD);
  max.set([4, 0xff, 0xff, 0xff]);
  max[4 + MAX_PAYLOAD - 1] = 0xab;
  const reader = new FrameReader(new ChunkReader(splitAt(max, [3, 100_000, 9_000_000])));
  const frame = (await reader.next())!;
  equal(frame.type, 4);
  equal(frame.payload.length, MAX_PAYLOAD);
  equal(frame.payload[MAX_PAYLOAD - 1], 0xab);
  equal(await reader.next(), null);
});

Deno.test("FrameReader: any framing of any frames reads back the same (property)", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 3000 })), {
        minLength: 1,
        maxLength: 12,
      }),
      fc.array(fc.nat(), { maxLength: 30 }),
      fc.integer({ min: 8, max: 4096 }),
      async (specs, cutSeeds, bufferSize) => {
        const frames = specs.map(([type, size], i) =>
          encodeFrameAllowEmpty(type, payload(size, i))
        );
        const bytes = concat(frames);
        const cuts = cutSeeds.map((seed) => seed % (bytes.length + 1));
        const got = await readAll(
          new FrameReader(new ChunkReader(splitAt(bytes, cuts)), bufferSize),
        );
        deepEqual(got, specs.map(([type, size], i) => ({ type, payload: [...payload(size, i)] })));
      },
    ),
    { numRuns: 150 },
  );
});

function encodeFrameAllowEmpty(type: number, data: Uint8Array): Uint8Array {
  if (data.length > 0) return encodeFrame(type, data);
  return new Uint8Array([type, 0, 0, 0]);
}

Deno.test("FrameReader: the peer closing between frames is the end; inside one is an error", async () => {
  equal(await new FrameReader(new ChunkReader([])).next(), null);
  const whole = encodeFrame(2, payload(100, 3));
  for (const cut of [1, 3, 4, 50, 103]) {
    const reader = new FrameReader(new ChunkReader([whole.subarray(0, cut)]));
    await rejects(reader.next(), TruncatedFrameError, `cut at ${cut}`);
  }
  // A large frame (own buffer) cut short.
  const large = encodeFrame(2, payload(200_000, 4));
  await rejects(
    new FrameReader(new ChunkReader([large.subarray(0, 150_000)])).next(),
    (error: Error) => error instanceof TruncatedFrameError && /150000|149996/.test(error.message),
  );
  // A complete frame, then a truncated one.
  const reader = new FrameReader(new ChunkReader([concat([whole, whole.subarray(0, 7)])]));
  equal((await reader.next())!.payload.length, 100);
  await rejects(reader.next(), TruncatedFrameError);
});
