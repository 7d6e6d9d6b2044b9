import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import type { Steps } from "../../protocol/steps.ts";
import { Slicer } from "./slicer.ts";

function* counting(pieces: number, log: string[], name: string): Steps<number> {
  for (let i = 0; i < pieces; i++) {
    log.push(`${name}${i}`);
    yield;
  }
  return pieces;
}

Deno.test("work that does not yield is done at once, without a promise", () => {
  const slicer = new Slicer();
  equal(slicer.run(counting(0, [], "a")), 0);
});

Deno.test("work past the slice waits for later turns, and later work queues behind it", async () => {
  // A slice of 0 ms: every piece after the first yield waits for a turn of the event loop.
  const slicer = new Slicer(0);
  const log: string[] = [];
  const a = slicer.run(counting(3, log, "a"));
  ok(a instanceof Promise);
  const b = slicer.run(counting(2, log, "b"));
  ok(b instanceof Promise, "queued behind a, not run at once");
  equal(slicer.waiting, 2);
  deepEqual(await Promise.all([a, b]), [3, 2]);
  // One piece per turn, in rotation.
  deepEqual(log, ["a0", "a1", "b0", "a2", "b1"]);
  equal(slicer.waiting, 0);
});

Deno.test("an error in sliced work rejects that work only", async () => {
  const slicer = new Slicer(0);
  const failing = (function* (): Steps<void> {
    yield;
    yield;
    throw new RangeError("bad piece");
  })();
  const bad = slicer.run(failing);
  const good = slicer.run(counting(2, [], "g"));
  await rejects(bad as Promise<void>, /bad piece/);
  equal(await good, 2);
});
