/**
 * The bounded CI run of the in-process fuzz targets (fixed seed; `deno task fuzz` runs them for
 * longer with fresh seeds; a failure message carries fast-check's seed and path to replay it),
 * and the frame reader's exhaustive cases: every split point and pair of split points, every
 * cut, and 16,777,215-byte payloads.
 */
import fc from "fast-check";
import { deepEqual, equal, ok } from "node:assert/strict";
import { MAX_PAYLOAD } from "../../protocol/frame.ts";
import { FrameReader, TruncatedFrameError } from "../../protocol/frame_reader.ts";
import { concat, rawFrame } from "../support/raw_conn.ts";
import { CI_SETTINGS, pseudoRandomBytes } from "./messages.ts";
import { INPROC_TARGETS, readAll, ScriptedReader } from "./inproc_targets.ts";

/** The seed of the CI run. */
const CI_SEED = 20_261_125;

for (const target of INPROC_TARGETS) {
  Deno.test(`fuzz: ${target.name}`, async () => {
    await fc.assert(target.property(CI_SETTINGS, undefined), {
      seed: CI_SEED,
      numRuns: target.ciRuns,
    });
  });
}

/** Three small frames: a request, a zero-length payload, an unknown type. */
function threeFrames(): {
  stream: Uint8Array;
  frames: Array<{ type: number; payload: Uint8Array }>;
} {
  const frames = [
    { type: 2, payload: pseudoRandomBytes(23, 1) },
    { type: 1, payload: new Uint8Array() },
    { type: 200, payload: pseudoRandomBytes(9, 2) },
  ];
  return { stream: concat(frames.map((f) => rawFrame(f.type, f.payload))), frames };
}

Deno.test("frame reader: every one and every pair of split points", async () => {
  const { stream, frames } = threeFrames();
  for (let a = 1; a < stream.length; a++) {
    for (let b = a; b < stream.length; b++) {
      const { frames: got, error } = await readAll(
        new FrameReader(ScriptedReader.split(stream, a === b ? [a] : [a, b])),
      );
      equal(error, null, `cuts ${a}, ${b}`);
      deepEqual(got, frames, `cuts ${a}, ${b}`);
    }
  }
});

Deno.test("frame reader: one byte per read, and everything in one read", async () => {
  const { stream, frames } = threeFrames();
  const bytewise = new ScriptedReader(Array.from(stream, (b) => Uint8Array.of(b)));
  deepEqual((await readAll(new FrameReader(bytewise))).frames, frames);
  deepEqual((await readAll(new FrameReader(new ScriptedReader([stream])))).frames, frames);
});

Deno.test("frame reader: a stream cut at every point", async () => {
  const { stream, frames } = threeFrames();
  const ends = [0, 27, 31, 44];
  for (let end = 0; end < stream.length; end++) {
    const { frames: got, error } = await readAll(
      new FrameReader(new ScriptedReader([stream.subarray(0, end)])),
    );
    const complete = ends.filter((e) => e > 0 && e <= end).length;
    deepEqual(got, frames.slice(0, complete), `cut at ${end}`);
    if (ends.includes(end)) equal(error, null, `cut at ${end}`);
    else ok(error instanceof TruncatedFrameError, `cut at ${end}: ${error}`);
  }
});

Deno.test("frame reader: 16,777,215-byte payloads in pieces of every size class", async () => {
  const payload = pseudoRandomBytes(MAX_PAYLOAD, 3);
  const stream = concat([rawFrame(4, payload), rawFrame(3, Uint8Array.of(7))]);
  for (const piece of [1000, 65_535, 65_536, 65_537, 1 << 20, stream.length]) {
    const pieces = [];
    for (let at = 0; at < stream.length; at += piece) pieces.push(stream.subarray(at, at + piece));
    const { frames, error } = await readAll(new FrameReader(new ScriptedReader(pieces)));
    equal(error, null);
    equal(frames.length, 2);
    equal(frames[0]!.type, 4);
    ok(
      frames[0]!.payload.length === MAX_PAYLOAD &&
        frames[0]!.payload.every((b, i) => b === payload[i]),
    );
    deepEqual(frames[1], { type: 3, payload: Uint8Array.of(7) });
  }
  // One byte short: a clear error, not a hang.
  const { frames, error } = await readAll(
    new FrameReader(new ScriptedReader([stream.subarray(0, 4 + MAX_PAYLOAD - 1)])),
  );
  deepEqual(frames, []);
  ok(error instanceof TruncatedFrameError);
});
