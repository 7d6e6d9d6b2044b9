import { deepEqual, equal, rejects, throws } from "node:assert/strict";
import { definePlugin } from "../mod.ts";
import {
  assertNone,
  assertRewrite,
  assertStop,
  type RequestOutcome,
  testChain,
  testPlugin,
  type TestRequest,
} from "./mod.ts";
import { parseIp, parseQuery } from "./wire.ts";
import { formatIp } from "../api/views.ts";

/** A plugin that reports what it saw in the request as a JSON stop body. */
const mirror = definePlugin({
  name: "mirror",
  async requestFilter(_conf, req, res) {
    res.body = JSON.stringify({
      id: req.id,
      srcIp: req.srcIp,
      method: req.method,
      path: req.path,
      args: req.args.raw(),
      headers: [...req.headers],
      body: await req.text(),
    });
  },
});

async function seen(request: TestRequest) {
  const outcome = await (await testPlugin(mirror)).request(request);
  assertStop(outcome);
  return JSON.parse(outcome.text);
}

Deno.test("the kit sends GET / from 127.0.0.1 when the test says nothing", async () => {
  deepEqual(await seen({}), {
    id: 0,
    srcIp: "127.0.0.1",
    method: "GET",
    path: "/",
    args: [],
    headers: [],
    body: "",
  });
});

Deno.test("the kit builds the request as APISIX does", async () => {
  deepEqual(
    await seen({
      id: 123456,
      srcIp: "2001:db8::1",
      method: "PUT",
      path: "/hello?xx=y&xx=z&&y=&&z&sp=a+b%21",
      args: [["extra", null]],
      headers: [["X-Req", "foo"], ["x-req", "bar"], ["Host", "localhost"]],
      body: "payload",
    }),
    {
      id: 123456,
      srcIp: "2001:db8::1",
      method: "PUT",
      path: "/hello",
      args: [["xx", "y"], ["xx", "z"], ["y", ""], ["z", null], ["sp", "a b!"], ["extra", null]],
      headers: [["host", "localhost"], ["x-req", "foo, bar"]],
      body: "payload",
    },
  );
  const fromObjects = await seen({ args: { a: ["1", "2"], b: null }, headers: { A: ["1", "2"] } });
  deepEqual(fromObjects.args, [["a", "1"], ["a", "2"], ["b", null]]);
  deepEqual(fromObjects.headers, [["a", "1, 2"]]);
  deepEqual((await seen({ args: "?q=1" })).args, [["q", "1"]]);
});

Deno.test("the kit passes header bytes through and refuses text that is not bytes", async () => {
  const plugin = await testPlugin(definePlugin({
    name: "echo-header",
    requestFilter(_conf, req, res) {
      res.headers.set("x-echo", req.headers.get("x-bytes") ?? "");
      res.status = 200;
    },
  }));
  const outcome = await plugin.request({ headers: { "x-bytes": "\xff\xfe" } });
  assertStop(outcome);
  deepEqual(outcome.wire.headers, [["x-echo", "\xff\xfe"]]);
  await rejects(plugin.request({ headers: { "x-bytes": "日本" } }), /not a byte string/);
  await rejects(plugin.request({ srcIp: "localhost" }), /Invalid IP address "localhost"/);
});

Deno.test("the kit answers variables and bodies from the test, asking each once per call", async () => {
  const reader = definePlugin({
    name: "reader",
    async requestFilter(_conf, req, res) {
      const values = [
        await req.var("set"),
        await req.var("empty"),
        await req.var("unset"),
        await req.var("set"),
        (await req.body()).length,
        (await req.text()).length,
      ];
      res.body = JSON.stringify(values);
    },
  });
  const outcome = await (await testPlugin(reader)).request({
    vars: { set: "v", empty: "", unset: null },
    body: new Uint8Array([1, 2, 3]),
  });
  assertStop(outcome);
  deepEqual(JSON.parse(outcome.text), ["v", "", null, "v", 3, 3]);
  deepEqual(outcome.asks, [
    { kind: "var", name: "set" },
    { kind: "var", name: "empty" },
    { kind: "var", name: "unset" },
    { kind: "reqBody" },
  ]);
});

Deno.test("the kit parses confs as the runner does", async () => {
  const raw = definePlugin<unknown>({ name: "raw", requestFilter() {} });
  deepEqual((await testPlugin(raw, { a: [1] })).conf, { a: [1] });
  equal((await testPlugin(raw)).conf, null);
  equal((await testPlugin(raw, "  ")).conf, null);
  await rejects(testPlugin(raw, "{bad"), SyntaxError);
  const custom = definePlugin<string>({
    name: "custom",
    parseConf: (s) => `<${s}>`,
    requestFilter() {},
  });
  equal((await testPlugin(custom, "text")).conf, "<text>");
  equal((await testPlugin(custom, { a: 1 })).conf, '<{"a":1}>');
  await rejects(testPlugin({ name: "x" } as never), /needs a requestFilter or a responseFilter/);
});

Deno.test("the kit rejects with the plugin's own error when a filter throws", async () => {
  const broken = definePlugin({
    name: "broken",
    requestFilter() {
      throw new RangeError("out of range");
    },
    responseFilter() {
      return Promise.reject(new Error("async failure"));
    },
  });
  const plugin = await testPlugin(broken);
  await rejects(plugin.request(), RangeError);
  await rejects(plugin.response(), /async failure/);
});

Deno.test("the kit reports the runner's warnings", async () => {
  const sloppy = definePlugin({
    name: "sloppy",
    requestFilter(_conf, req, res) {
      req.setBody("");
      res.headers.set("content-type", "text/plain");
      res.headers.set("x-kept", "1");
    },
  });
  const outcome = await (await testPlugin(sloppy)).request();
  assertRewrite(outcome);
  deepEqual(outcome.wire.responseHeaders, [["x-kept", "1"]]);
  equal(outcome.warnings.length, 2);
  equal(outcome.warnings[0]!.startsWith("sloppy: ignored an empty request body"), true);
  equal(outcome.warnings[1]!.startsWith("sloppy: dropped response header(s) content-type"), true);
});

Deno.test("the kit applies a rewrite to the upstream request as APISIX does", async () => {
  const changer = definePlugin({
    name: "changer",
    requestFilter(_conf, req) {
      req.path = "/new path";
      req.headers.delete("x-delete");
      req.headers.set("x-change", "bar");
      req.args.delete("d");
      req.args.set("a", "foo");
      req.args.append("a", "bar");
      req.setBody("abc\n");
    },
  });
  const outcome = await (await testPlugin(changer)).request({
    path: "/old?c=foo&d=bar&a=0",
    headers: { "x-delete": "1", "x-change": "foo", "x-keep": "k" },
    body: "old",
  });
  assertRewrite(outcome);
  equal(outcome.wire.path, "/new path");
  deepEqual(outcome.wire.headers, [["x-delete", null], ["x-change", "bar"]]);
  deepEqual(outcome.wire.args, [["d", null], ["a", "foo"], ["a", "bar"]]);
  equal(new TextDecoder().decode(outcome.wire.body!), "abc\n");
  equal(outcome.upstream.path, "/new path");
  deepEqual([...outcome.upstream.headers], [["x-change", "bar"], ["x-keep", "k"]]);
  equal(outcome.upstream.args.toString(), "c=foo&a=foo&a=bar");
  equal(outcome.upstream.text, "abc\n");
});

Deno.test("a chain runs in order, later plugins see earlier changes, a stop ends it", async () => {
  const calls: string[] = [];
  const step = (name: string, stop = false) =>
    definePlugin({
      name,
      async requestFilter(_conf, req, res) {
        calls.push(`${name}:${req.headers.get("x-steps") ?? ""}:${await req.var("v")}`);
        req.headers.set("x-steps", `${req.headers.get("x-steps") ?? ""}${name}`);
        if (stop) res.status = 403;
      },
    });
  const chain = await testChain([[step("a")], [step("b", true)], [step("c")]]);
  const outcome = await chain.request({ vars: { v: "1" } });
  assertStop(outcome);
  equal(outcome.status, 403);
  deepEqual(calls, ["a::1", "b:a:1"]);
  deepEqual(outcome.asks, [{ kind: "var", name: "v" }]);
});

Deno.test("a plugin without the phase's filter is skipped", async () => {
  const responseOnly = definePlugin({
    name: "response-only",
    responseFilter(_conf, res) {
      res.status = 202;
    },
  });
  const chain = await testChain([[responseOnly]]);
  assertNone(await chain.request());
  equal((await chain.response()).status, 202);
});

Deno.test("the response phase shows the upstream response and replies with the full header list", async () => {
  const viewer = definePlugin<unknown>({
    name: "viewer",
    async responseFilter(_conf, res) {
      res.headers.append("x-seen", `${res.status} ${res.rawHeaders.map(([n]) => n).join(",")}`);
      res.headers.append("x-body", await res.text());
      await res.body();
    },
  });
  const outcome = await (await testPlugin(viewer)).response({
    id: 9,
    status: 200,
    headers: [["Content-Type", "text/plain"], ["Content-Length", "5"], ["Connection", "close"]],
    body: "hello",
  });
  equal(outcome.status, 200);
  equal(outcome.wire.status, 0);
  equal(outcome.wire.body, null);
  equal(outcome.text, "hello");
  deepEqual(outcome.wire.headers, [
    ["Content-Type", "text/plain"],
    ["x-seen", "200 Content-Type,Content-Length,Connection"],
    ["x-body", "hello"],
  ]);
  deepEqual(outcome.asks, [{ kind: "respBody" }]);

  const untouched = await (await testPlugin(definePlugin({ name: "none", responseFilter() {} })))
    .response({ headers: { "Content-Type": "text/plain", Server: "up", "Content-Length": "1" } });
  deepEqual(untouched.wire.headers, [["Content-Type", "text/plain"], ["Server", "up"]]);
  deepEqual([...untouched.headers], [["content-type", "text/plain"], ["server", "up"]]);
});

Deno.test("the kit fails a reply that would not fit in a frame, as the runner does", async () => {
  const huge = definePlugin({
    name: "huge",
    requestFilter(_conf, _req, res) {
      res.body = new Uint8Array(17 * 1024 * 1024);
    },
  });
  await rejects((await testPlugin(huge)).request(), /exceeds the protocol limit/);
});

Deno.test("assert helpers narrow the outcome and describe a mismatch", () => {
  const none: RequestOutcome = {
    action: "none",
    upstream: {} as never,
    responseHeaders: {} as never,
    asks: [],
    warnings: [],
  };
  assertNone(none);
  throws(() => assertStop(none), {
    name: "AssertionError",
    message: "Expected a stop, got no action",
  });
  throws(() => assertRewrite(none), /Expected a rewrite, got no action/);
});

Deno.test("parseIp writes the bytes APISIX sends and formatIp reads them back", () => {
  const cases: Array<[string, number[], string]> = [
    ["127.0.0.1", [127, 0, 0, 1], "127.0.0.1"],
    ["::1", [...new Array(15).fill(0), 1], "::1"],
    ["::", new Array(16).fill(0), "::"],
    [
      "2001:DB8:0:0:1:0:0:1",
      [32, 1, 13, 184, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1],
      "2001:db8::1:0:0:1",
    ],
    ["::ffff:10.1.2.3", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 10, 1, 2, 3], "::ffff:10.1.2.3"],
    ["fe80::", [254, 128, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "fe80::"],
  ];
  for (const [text, bytes, formatted] of cases) {
    deepEqual([...parseIp(text)], bytes, text);
    equal(formatIp(parseIp(text)), formatted);
  }
  for (
    const bad of ["1.2.3", "256.0.0.1", "1::2::3", "1:2:3:4:5:6:7:8:9", "g::1", "1:2:3:4:5:6:7"]
  ) {
    throws(() => parseIp(bad), /Invalid IP address/, bad);
  }
});

Deno.test("parseQuery follows ngx.req.get_uri_args", () => {
  deepEqual(parseQuery("a=1&a=2&&flag&empty=&sp=x+y&pct=%2F%zz"), [
    ["a", "1"],
    ["a", "2"],
    ["flag", null],
    ["empty", ""],
    ["sp", "x y"],
    ["pct", "%2F%zz"],
  ]);
  deepEqual(parseQuery(""), []);
});

Deno.test("the test kit asks what a conf prefetches, read or not, and rejects a bad declaration", async () => {
  const tagger = definePlugin<{ vars: string[] }>({
    name: "tagger",
    parseConf: (raw) => JSON.parse(raw),
    prefetch: (conf) => ({ vars: conf.vars, requestBody: true }),
    async requestFilter(_conf, req) {
      req.headers.set("x-from", (await req.var("remote_addr")) ?? "-");
    },
  });
  const plugin = await testPlugin(tagger, { vars: ["remote_addr", "uri"] });
  const outcome = await plugin.request({ vars: { remote_addr: "10.0.0.9" }, body: "b" });
  deepEqual(outcome.asks, [
    { kind: "var", name: "remote_addr" },
    { kind: "var", name: "uri" },
    { kind: "reqBody" },
  ]);
  assertRewrite(outcome);
  equal(outcome.upstream.headers.get("x-from"), "10.0.0.9");
  await rejects(testPlugin(tagger, { vars: ["no spaces please"] }), /var name must be/);
});
