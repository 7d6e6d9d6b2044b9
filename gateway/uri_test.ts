import { deepEqual, equal } from "node:assert/strict";
import { applyArgs, encodeArgs, escapePath, normalizePath, parseQuery, unescape } from "./uri.ts";
import { ipBytes } from "./request_state.ts";

Deno.test("$uri: decoded, dot segments resolved, slashes merged", () => {
  equal(normalizePath("/a%20b//c/./d/../e"), "/a b/c/e");
  equal(normalizePath("/caf%C3%A9"), "/caf\u00c3\u00a9", "bytes, one character each");
  equal(normalizePath("/dir/"), "/dir/");
  equal(unescape("%zz%4"), "%zz%4", "broken escapes stay");
});

Deno.test("args as ngx.req.get_uri_args gives them (PROTOCOL.md §4.3)", () => {
  deepEqual(parseQuery("xx=y&xx=z&&y=&&z&sp=a+b%21"), [
    ["xx", "y"],
    ["xx", "z"],
    ["y", ""],
    ["z", null],
    ["sp", "a b!"],
  ]);
});

Deno.test("a rewritten path is escaped as ngx_escape_uri does: ? and % included", () => {
  equal(escapePath("/new path/a?b=1#x%"), "/new%20path/a%3Fb=1%23x%25");
  equal(escapePath("/caf\u00e9"), "/caf%E9");
});

Deno.test("rewritten args: delete, replace then append, others kept (§5.2.5)", () => {
  const current: Array<[string, string | null]> = [["c", "foo"], ["d", "bar"], ["k", "1"]];
  deepEqual(applyArgs(current, [["a", "foo"], ["d", null], ["c", "bar"], ["a", "bar"]]), [
    ["c", "bar"],
    ["k", "1"],
    ["a", "foo"],
    ["a", "bar"],
  ]);
  equal(encodeArgs([["a b", "x/y"], ["flag", null]]), "a%20b=x%2Fy&flag");
});

Deno.test("src_ip bytes: IPv4, IPv6, IPv4-mapped", () => {
  deepEqual([...ipBytes("127.0.0.1")], [127, 0, 0, 1]);
  deepEqual([...ipBytes("::1")], [...new Array(15).fill(0), 1]);
  deepEqual([...ipBytes("::ffff:10.1.2.3")], [10, 1, 2, 3]);
  equal(ipBytes("2001:db8::2:1").length, 16);
});
