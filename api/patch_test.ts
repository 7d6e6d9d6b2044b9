import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { FrameEncoder } from "../protocol/encode.ts";
import { runSteps } from "../protocol/steps.ts";
import { ByteFormatError, ByteWriter, decodeLatin1, encodeLatin1 } from "./bytes.ts";
import {
  addScans,
  MAX_PATCH_ENTRIES,
  Patch,
  PatchLimitError,
  type PatchScan,
  scanPatch,
} from "./patch.ts";
import { requestAction } from "./reply.ts";

const text = (bytes: Uint8Array | null) => bytes === null ? null : decodeLatin1(bytes);

function roundTrip(patch: Patch): Patch {
  const out = new ByteWriter(16);
  patch.encode(out);
  return Patch.decode(out.take());
}

function full(): Patch {
  const patch = new Patch();
  patch.stop = true;
  patch.status = 418;
  patch.path = encodeLatin1("/p");
  patch.headers = new Map([["x-a", [encodeLatin1("1"), encodeLatin1("\xff")]], ["x-del", []]]);
  patch.args = new Map([["a", [encodeLatin1("v"), null]], ["gone", []]]);
  patch.requestBody = encodeLatin1("req");
  patch.responseHeaders = [[encodeLatin1("x-r"), encodeLatin1("1")]];
  patch.responseBody = encodeLatin1("resp");
  return patch;
}

Deno.test("a patch survives its binary form field by field", () => {
  const back = roundTrip(full());
  equal(back.stop, true);
  equal(back.status, 418);
  equal(text(back.path), "/p");
  deepEqual([...back.headers!].map(([n, v]) => [n, v.map(text)]), [["x-a", ["1", "\xff"]], [
    "x-del",
    [],
  ]]);
  deepEqual([...back.args!].map(([n, v]) => [n, v.map(text)]), [["a", ["v", null]], ["gone", []]]);
  equal(text(back.requestBody), "req");
  deepEqual(back.responseHeaders!.map(([n, v]) => [text(n), text(v)]), [["x-r", "1"]]);
  equal(text(back.responseBody), "resp");
  equal(back.empty, false);
});

Deno.test("an empty patch encodes to nothing and says so", () => {
  const patch = new Patch();
  equal(patch.empty, true);
  const out = new ByteWriter(16);
  patch.encode(out);
  equal(out.length, 0);
  equal(Patch.decode(new Uint8Array()).empty, true);
});

Deno.test("merge lets the later patch win per field and per name", () => {
  const earlier = new Patch();
  earlier.path = encodeLatin1("/a");
  earlier.headers = new Map([["x-a", [encodeLatin1("1")]], ["x-b", [encodeLatin1("2")]]]);
  earlier.args = new Map([["q", [encodeLatin1("1")]]]);
  earlier.responseHeaders = [[encodeLatin1("x-r"), encodeLatin1("early")]];
  const later = new Patch();
  later.headers = new Map([["x-a", []]]);
  later.args = new Map([["r", [null]]]);
  later.requestBody = encodeLatin1("b");
  later.status = 201;
  earlier.merge(later);
  equal(text(earlier.path), "/a");
  deepEqual([...earlier.headers!.keys()], ["x-a", "x-b"]);
  deepEqual(earlier.headers!.get("x-a"), []);
  deepEqual([...earlier.args!.keys()], ["q", "r"]);
  equal(text(earlier.requestBody), "b");
  equal(earlier.status, 201);
  equal(earlier.stop, false);
  equal(text(earlier.responseHeaders![0]![1]), "early");
  const stop = new Patch();
  stop.stop = true;
  earlier.merge(stop);
  equal(earlier.stop, true);
});

Deno.test("decode refuses malformed input with a ByteFormatError", () => {
  const truncated: Array<[string, number[]]> = [
    ["status without its value", [2, 200]],
    ["path longer than the input", [3, 5, 0, 0, 0, 0x2f]],
    ["header with fewer values than counted", [4, 1, 0, 0, 0, 0x78, 2, 0, 0, 0, 0, 0]],
    ["arg value without its bytes", [5, 1, 0, 0, 0, 0x61, 1, 0, 1, 9, 0, 0, 0]],
  ];
  for (const [what, bytes] of truncated) {
    throws(() => Patch.decode(Uint8Array.from(bytes)), ByteFormatError, what);
  }
  throws(() => Patch.decode(Uint8Array.of(99)), /unknown patch tag 99 at offset 0/);
  throws(() => Patch.decode(Uint8Array.of(2, 50, 0)), /status 50 invalid/);
  throws(() => Patch.decode(Uint8Array.of(7, 255, 255, 255, 255)), /response headers cannot fit/);
});

function bytesOf(patch: Patch): Uint8Array {
  const out = new ByteWriter(16);
  patch.encode(out);
  return out.take();
}

function scan(patch: Patch | Uint8Array, response = false, max = 16_777_215): PatchScan {
  return runSteps(scanPatch(patch instanceof Patch ? bytesOf(patch) : patch, response, max));
}

Deno.test("a count never wraps: 65,536 values for one header is the plugin's error", () => {
  const patch = new Patch();
  patch.headers = new Map([["x-many", Array.from({ length: 65_536 }, () => encodeLatin1("v"))]]);
  throws(() => bytesOf(patch), PatchLimitError);
  patch.headers.set("x-many", patch.headers.get("x-many")!.slice(1));
  equal(Patch.decode(bytesOf(patch)).headers!.get("x-many")!.length, 65_535);
});

Deno.test("a list over 65,536 entries is refused by the encoder and by the scan", () => {
  const patch = new Patch();
  patch.responseHeaders = Array.from(
    { length: MAX_PATCH_ENTRIES + 1 },
    (_, i) => [encodeLatin1(`r${i}`), encodeLatin1("v")] as const,
  );
  throws(() => bytesOf(patch), PatchLimitError);
  const args = new Patch();
  args.args = new Map(
    Array.from({ length: MAX_PATCH_ENTRIES }, (_, i) => [`a${i}`, [encodeLatin1("v")]]),
  );
  equal(scan(args).over, null);
  equal(scan(args).args, MAX_PATCH_ENTRIES);
  args.args.set("one-more", []);
  throws(() => bytesOf(args), PatchLimitError);
});

Deno.test("the scan reads counts and lengths, and stops at the first list over the limit", () => {
  const count = new ByteWriter(16).u8(7).u32(4_000_000_000).take();
  equal(scan(count).over, "has 4000000000 response headers, more than 65536");
  // A million headers: stopped after 65,537, long before the end (which is not even there).
  const many = new ByteWriter(16);
  for (let i = 0; i <= MAX_PATCH_ENTRIES; i++) many.u8(4).latin1(`h${i}`).u16(1).latin1("v");
  equal(scan(many.take()).over, "has more than 65536 request header values");
  throws(
    () => scan(new ByteWriter(16).u8(4).latin1("x").u16(9).latin1("v").take()),
    ByteFormatError,
  );
  throws(() => scan(new ByteWriter(16).u8(1).u8(1).take()), /appears twice/);
  throws(() => scan(new ByteWriter(16).u8(3).latin1("no-slash").take()), /start with \//);
  throws(() => scan(new ByteWriter(16).u8(4).latin1("").u16(0).take()), /empty/);
  throws(() => scan(new ByteWriter(16).u8(9).take()), /unknown patch tag 9/);
});

Deno.test("the reply size from a patch's lengths is never above the real size", () => {
  const encoder = new FrameEncoder();
  for (const size of [0, 1, 3, 100, 5000]) {
    for (const stop of [false, true]) {
      const patch = full();
      patch.stop = stop;
      patch.headers!.set("x-sized", [new Uint8Array(size), new Uint8Array(size + 1)]);
      patch.args!.set("sized", [new Uint8Array(size), null]);
      patch.responseHeaders = Array.from(
        { length: 300 },
        (_, i) => [encodeLatin1(`r${i}`), new Uint8Array(size % 7)] as const,
      );
      const request = encoder.reqCall(1, requestAction(patch)).length;
      const least = scan(patch).replyBytes;
      ok(least <= request, `${least} > ${request} (stop: ${stop})`);
      ok(least > request * 0.5, `${least} is far below ${request} (stop: ${stop})`);
      // The response phase: an entry per header value, and the body.
      const entries = [...patch.headers!].flatMap(([name, values]) =>
        values.map((value) => [encodeLatin1(name), value] as const)
      );
      const response = encoder.respCall(1, 0, entries, patch.responseBody).length;
      ok(scan(patch, true).replyBytes <= response, `response phase, size ${size}`);
    }
  }
  const big = new Patch();
  big.stop = true;
  big.responseBody = new Uint8Array(16_777_200);
  equal(scan(big).over, null);
  big.responseBody = new Uint8Array(16_777_210);
  match(scan(big).over!, /makes a reply of more than 16777215 bytes/);
  // Without Stop, a request-phase reply does not carry the response body.
  big.stop = false;
  equal(scan(big).over, null);
  match(scan(big, true).over!, /makes a reply of more than 16777215 bytes/);
});

Deno.test("a chain's patches are limited together", () => {
  const a: PatchScan = { over: null, headers: 40_000, args: 1, responseHeaders: 0, replyBytes: 10 };
  equal(addScans(a, a).over, "have more than 65536 request header values");
  const b = { ...a, headers: 1 };
  equal(addScans(b, b).over, null);
});
