/**
 * The runner's work on the largest accepted patch, step by step, in this process (no sockets):
 * scanning, decoding, building the reply and encoding it, each run as the slicer runs it (an
 * HTTPReqCall reply, and an HTTPRespCall reply over 65,536 upstream headers), with
 * the longest single step of each phase (a step is what runs between two yields; a garbage
 * collection that falls in it counts). Run with `--v8-flags=--trace-gc` to see the collections.
 *
 * Run: `deno run -A benchmarks/reply_steps_probe.ts [--rounds 5]`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ByteWriter } from "../api/bytes.ts";
import { Patch, scanPatch } from "../api/patch.ts";
import { requestActionSteps, responseHeadersSteps } from "../api/reply.ts";
import { HttpRespCallReq } from "../protocol/gen/http_resp_call_req.ts";
import { encodeRespCall, type Entry } from "../tests/support/apisix.ts";
import { ByteBuffer } from "flatbuffers";
import { FrameEncoder } from "../protocol/encode.ts";
import { MAX_PAYLOAD } from "../protocol/frame.ts";
import type { Steps } from "../protocol/steps.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { rounds: { type: "string", default: "5" } },
});

/** The crafted-worst patch of bounds_bench.ts: 65,536 entries in each of the three lists. */
function craftedWorst(): Uint8Array {
  const out = new ByteWriter();
  const enc = new TextEncoder();
  const str = (text: string) => out.bytes(enc.encode(text));
  for (let i = 0; i < 65536; i++) {
    out.u8(4);
    str("h" + i);
    out.u16(1);
    str("v");
  }
  for (let i = 0; i < 65536; i++) {
    out.u8(5);
    str("a" + i);
    out.u16(1).u8(1);
    str("v");
  }
  out.u8(7).u32(65536);
  for (let i = 0; i < 65536; i++) {
    str("r" + i);
    str("v");
  }
  return out.take().slice();
}

/** Runs `steps` to the end, returning its value and its longest step (ms). */
function timed<T>(steps: Steps<T>): [T, number, number] {
  let worst = 0;
  const started = performance.now();
  let last = started;
  for (;;) {
    const next = steps.next();
    const now = performance.now();
    worst = Math.max(worst, now - last);
    last = now;
    if (next.done) return [next.value, worst, now - started];
  }
}

const encoder = new FrameEncoder();
for (let round = 0; round < Number(values.rounds); round++) {
  const bytes = craftedWorst();
  const [scan, scanWorst, scanTotal] = timed(scanPatch(bytes, false, MAX_PAYLOAD));
  if (scan.over) throw new Error(scan.over);
  const [patch, decodeWorst, decodeTotal] = timed(Patch.decodeSteps(bytes));
  const [action, actionWorst, actionTotal] = timed(requestActionSteps(patch));
  const [frame, encodeWorst, encodeTotal] = timed(encoder.reqCallSteps(1, action));
  const f = (n: number) => n.toFixed(1);
  console.log(
    `round ${round}: longest step (total) ms: scan ${f(scanWorst)} (${f(scanTotal)}), decode ${
      f(decodeWorst)
    } (${f(decodeTotal)}), reply ${f(actionWorst)} (${f(actionTotal)}), encode ${f(encodeWorst)} (${
      f(encodeTotal)
    }); frame ${frame.length} bytes`,
  );
}

// The response phase: 65,536 header records over 65,536 upstream headers, half of them changed.
const upstream: Entry[] = Array.from({ length: 65536 }, (_, i) => [`H${i}`, "upstream"]);
const resp = HttpRespCallReq.getRootAsHttpRespCallReq(
  new ByteBuffer(encodeRespCall({ id: 1, status: 200, headers: upstream, token: 1 })),
);
for (let round = 0; round < Number(values.rounds); round++) {
  const out = new ByteWriter();
  const enc = new TextEncoder();
  for (let i = 0; i < 65536; i++) {
    out.u8(4).bytes(enc.encode("h" + i * 2)).u16(1).bytes(enc.encode("v"));
  }
  const bytes = out.take().slice();
  const [scan, scanWorst, scanTotal] = timed(scanPatch(bytes, true, MAX_PAYLOAD));
  if (scan.over) throw new Error(scan.over);
  const [patch, decodeWorst, decodeTotal] = timed(Patch.decodeSteps(bytes));
  const [headers, replyWorst, replyTotal] = timed(responseHeadersSteps(patch, resp));
  const [frame, encodeWorst, encodeTotal] = timed(encoder.respCallSteps(1, 200, headers, null));
  const f = (n: number) => n.toFixed(1);
  console.log(
    `response round ${round}: longest step (total) ms: scan ${f(scanWorst)} (${
      f(scanTotal)
    }), decode ${f(decodeWorst)} (${f(decodeTotal)}), reply ${f(replyWorst)} (${
      f(replyTotal)
    }), encode ${f(encodeWorst)} (${f(encodeTotal)}); frame ${frame.length} bytes`,
  );
}
