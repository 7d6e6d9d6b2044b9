import { deepEqual, equal, throws } from "node:assert/strict";
import { HeaderStore, isIgnoredResponseHeader } from "./headers.ts";

Deno.test("HeaderStore matches names case-insensitively and keeps every value in order", () => {
  const headers = new HeaderStore([["X-Req", "foo"], ["x-req", "bar"], ["Accept", "*/*"]]);
  equal(headers.get("X-REQ"), "foo, bar");
  deepEqual(headers.getAll("x-req"), ["foo", "bar"]);
  equal(headers.has("ACCEPT"), true);
  equal(headers.get("absent"), null);
  deepEqual(headers.getAll("absent"), []);
  equal(headers.size, 2);
});

Deno.test("HeaderStore iterates sorted by name and never joins set-cookie, like Headers", () => {
  const init: Array<[string, string]> = [
    ["x-b", "1"],
    ["Set-Cookie", "a=1; Path=/"],
    ["x-b", "2"],
    ["set-cookie", "b=2, c"],
    ["a", "0"],
  ];
  const ours = new HeaderStore(init);
  const web = new Headers(init);
  deepEqual([...ours], [...web]);
  deepEqual(ours.getSetCookie(), web.getSetCookie());
  deepEqual([...ours.keys()], [...web.keys()]);
  deepEqual([...ours.values()], [...web.values()]);
  const seen: string[] = [];
  ours.forEach((value, name, headers) => {
    equal(headers, ours);
    seen.push(`${name}=${value}`);
  });
  deepEqual(seen, ["a=0", "set-cookie=a=1; Path=/", "set-cookie=b=2, c", "x-b=1, 2"]);
});

Deno.test("HeaderStore set, append and delete track the names they change", () => {
  const headers = HeaderStore.fromTrusted([["a", "1"], ["b", "2"]]);
  equal(headers.changed, null);
  headers.get("a");
  headers.getAll("b");
  equal(headers.changed, null, "reading is never a change");
  headers.set("A", "x");
  headers.append("C", "y");
  headers.append("c", "z");
  headers.delete("absent");
  headers.delete("B");
  deepEqual([...headers.changed!].sort(), ["a", "b", "c"]);
  deepEqual([...headers.pairs()], [["a", "x"], ["c", "y"], ["c", "z"]]);
  deepEqual(headers.valuesOf("b"), []);
});

Deno.test("HeaderStore trims values and refuses what HTTP cannot carry", () => {
  const headers = new HeaderStore();
  headers.set("x", "  padded\t");
  equal(headers.get("x"), "padded");
  headers.set("x", "\xff\xfe");
  equal(headers.get("x"), "\xff\xfe");
  throws(() => headers.set("bad name", "1"), /Invalid header name: "bad name"/);
  throws(() => headers.set("", "1"), TypeError);
  throws(() => headers.set("x", "a\r\nb"), /Invalid value for header x/);
  throws(() => headers.append("x", "nul\0"), TypeError);
  throws(() => headers.set("x", "日本"), /byte string/);
});

Deno.test("HeaderStore.restore replaces values without counting as a change", () => {
  const headers = HeaderStore.fromTrusted([["a", "1"]]);
  headers.restore("a", ["2", "3"]);
  headers.restore("b", ["4"]);
  headers.restore("b", []);
  equal(headers.changed, null);
  deepEqual(headers.getAll("a"), ["2", "3"]);
  equal(headers.has("b"), false);
});

Deno.test("HeaderStore.fromTrustedLazily reads the wire only when something reads the headers", () => {
  let loads = 0;
  const wire = () => {
    loads++;
    return [["Host", "a"], ["X-A", "1"], ["x-a", "2"], ["X-Gone", "g"]] as const;
  };
  const headers = HeaderStore.fromTrustedLazily(wire);
  headers.restore("x-gone", []);
  headers.restore("x-overlay", ["o"]);
  headers.set("X-Set", "s");
  headers.set("Host", "b");
  equal(loads, 0, "restore and set need nothing of what was there");
  deepEqual([...headers.changed!], ["x-set", "host"]);
  deepEqual(headers.valuesOf("x-set"), ["s"]);
  deepEqual(headers.valuesOf("host"), ["b"]);
  equal(loads, 0);
  headers.append("x-a", "3");
  equal(loads, 1);
  deepEqual([...headers.pairs()], [
    ["host", "b"],
    ["x-a", "1"],
    ["x-a", "2"],
    ["x-a", "3"],
    ["x-overlay", "o"],
    ["x-set", "s"],
  ]);
  equal(headers.has("x-gone"), false);
  headers.delete("x-overlay");
  deepEqual([...headers.changed!], ["x-set", "host", "x-a", "x-overlay"]);
  equal(loads, 1);
});

Deno.test("HeaderStore.fromTrustedLazily: any read loads, and sees sets made before it", () => {
  for (
    const read of [
      (h: HeaderStore) => h.get("x-a"),
      (h: HeaderStore) => h.has("x-a"),
      (h: HeaderStore) => h.getAll("x-a"),
      (h: HeaderStore) => h.size,
      (h: HeaderStore) => [...h.entries()],
      (h: HeaderStore) => h.valuesOf("x-a"),
    ]
  ) {
    let loads = 0;
    const headers = HeaderStore.fromTrustedLazily(() => {
      loads++;
      return [["x-a", "1"], ["x-b", "2"]];
    });
    headers.set("x-b", "3");
    read(headers);
    equal(loads, 1, String(read));
    deepEqual([...headers.entries()], [["x-a", "1"], ["x-b", "3"]]);
    equal(loads, 1);
  }
});

Deno.test("HeaderStore shows its entries when inspected", () => {
  const headers = new HeaderStore([["X-A", "1"], ["x-a", "2"]]);
  equal(Deno.inspect(headers), 'Headers { "x-a": [ "1", "2" ] }');
});

Deno.test("isIgnoredResponseHeader names the headers APISIX's proxy sets itself, any case", () => {
  for (const name of ["Content-Type", "content-length", "LOCATION", "Server"]) {
    equal(isIgnoredResponseHeader(name), true, name);
  }
  for (const name of ["x-added", "cache-control", "set-cookie"]) {
    equal(isIgnoredResponseHeader(name), false, name);
  }
});
