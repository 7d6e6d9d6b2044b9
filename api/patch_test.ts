import { deepEqual, equal, throws } from "node:assert/strict";
import { ByteFormatError, ByteWriter, decodeLatin1, encodeLatin1 } from "./bytes.ts";
import { Patch } from "./patch.ts";

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
