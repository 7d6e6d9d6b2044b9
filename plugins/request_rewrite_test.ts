import { deepEqual, equal, rejects } from "node:assert/strict";
import { assertNone, assertRewrite, testPlugin } from "../testing/mod.ts";
import rewrite from "./request_rewrite.ts";

Deno.test("request-rewrite sets path and host, keeping the query", async () => {
  const plugin = await testPlugin(rewrite, { path: "/v2/users", host: "backend.internal" });
  const outcome = await plugin.request({ path: "/users?page=2", headers: { host: "api.example" } });
  assertRewrite(outcome);
  equal(outcome.upstream.path, "/v2/users");
  equal(outcome.upstream.headers.get("host"), "backend.internal");
  equal(outcome.upstream.args.toString(), "page=2");
  deepEqual(outcome.wire.args, []);
  deepEqual(outcome.asks, []);
});

Deno.test("request-rewrite applies header add, set and remove in proxy-rewrite's order", async () => {
  const plugin = await testPlugin(rewrite, {
    headers: {
      add: { "x-trace": "added" },
      set: { "x-trace": "set", "x-list": ["a", "b"], "X-Upper": "u" },
      remove: ["Cookie", "x-absent"],
    },
  });
  const outcome = await plugin.request({
    headers: { "x-trace": "client", cookie: "s=1", "x-keep": "k" },
  });
  assertRewrite(outcome);
  const headers = outcome.upstream.headers;
  deepEqual(headers.getAll("x-trace"), ["set"]);
  deepEqual(headers.getAll("x-list"), ["a, b"]);
  equal(headers.get("x-upper"), "u");
  equal(headers.has("cookie"), false);
  equal(headers.get("x-keep"), "k");
  deepEqual(outcome.wire.headers, [
    ["x-trace", "set"],
    ["x-list", "a, b"],
    ["x-upper", "u"],
    ["cookie", null],
  ]);
});

Deno.test("request-rewrite takes a plain headers object as set, like proxy-rewrite", async () => {
  const outcome = await (await testPlugin(rewrite, { headers: { "x-a": "1", set: "literal" } }))
    .request({ headers: { "x-a": "0" } });
  assertRewrite(outcome);
  equal(outcome.upstream.headers.get("x-a"), "1");
  equal(outcome.upstream.headers.get("set"), "literal");
});

Deno.test("request-rewrite sets and removes args; repeated and value-less args survive", async () => {
  const plugin = await testPlugin(rewrite, {
    args: { set: { page: "1", tag: ["x", "y"] }, remove: ["debug"] },
  });
  const outcome = await plugin.request({ path: "/s?q=a+b&flag&debug=1&tag=old&tag=older" });
  assertRewrite(outcome);
  deepEqual(outcome.upstream.args.raw(), [
    ["q", "a b"],
    ["flag", null],
    ["tag", "x"],
    ["tag", "y"],
    ["page", "1"],
  ]);
  deepEqual(outcome.wire.args, [["page", "1"], ["tag", "x"], ["tag", "y"], ["debug", null]]);
});

Deno.test("request-rewrite adds response headers while the request is proxied", async () => {
  const plugin = await testPlugin(rewrite, {
    response_headers: { "x-served-by": "deno", "x-region": "${region ?? eu}" },
  });
  const outcome = await plugin.request();
  assertRewrite(outcome);
  deepEqual(outcome.wire.responseHeaders, [["x-served-by", "deno"], ["x-region", "eu"]]);
  equal(outcome.responseHeaders.get("x-served-by"), "deno");
  deepEqual(outcome.wire.headers, []);
  deepEqual(outcome.asks, [{ kind: "var", name: "region" }]);
});

Deno.test("request-rewrite fetches each referenced variable once, and no others", async () => {
  const plugin = await testPlugin(rewrite, {
    path: "/v2$uri",
    headers: {
      set: { "x-client": "$remote_addr", "x-both": "${remote_addr}/${route_id}" },
    },
    args: { set: { route: "$route_id" } },
  });
  const outcome = await plugin.request({
    path: "/orders",
    vars: { uri: "/orders", remote_addr: "10.1.2.3", route_id: "7", unused: "x" },
  });
  assertRewrite(outcome);
  equal(outcome.upstream.path, "/v2/orders");
  equal(outcome.upstream.headers.get("x-client"), "10.1.2.3");
  equal(outcome.upstream.headers.get("x-both"), "10.1.2.3/7");
  equal(outcome.upstream.args.get("route"), "7");
  deepEqual(outcome.asks, [
    { kind: "var", name: "uri" },
    { kind: "var", name: "remote_addr" },
    { kind: "var", name: "route_id" },
  ]);
  const constant = await (await testPlugin(rewrite, { headers: { set: { "x-a": "1" } } }))
    .request();
  deepEqual(constant.asks, []);
});

Deno.test("request-rewrite renders unset variables as empty or their fallback", async () => {
  const plugin = await testPlugin(rewrite, {
    headers: {
      set: { "x-user": "[$consumer_name]", "x-tier": "${tier ?? free}", "x-cost": "\\$5" },
    },
  });
  const outcome = await plugin.request();
  assertRewrite(outcome);
  equal(outcome.upstream.headers.get("x-user"), "[]");
  equal(outcome.upstream.headers.get("x-tier"), "free");
  equal(outcome.upstream.headers.get("x-cost"), "$5");
});

Deno.test("request-rewrite sends a variable's non-ASCII text as UTF-8 header bytes", async () => {
  const plugin = await testPlugin(rewrite, { headers: { set: { "x-uri": "$uri" } } });
  const outcome = await plugin.request({ vars: { uri: "/café" } });
  assertRewrite(outcome);
  const value = outcome.upstream.headers.get("x-uri")!;
  equal(new TextDecoder().decode(Uint8Array.from(value, (c) => c.charCodeAt(0))), "/café");
});

Deno.test("request-rewrite fails the call when a path template renders no path", async () => {
  const plugin = await testPlugin(rewrite, { path: "$target" });
  await rejects(plugin.request(), /path template made "", which does not start with "\/"/);
  const ok = await plugin.request({ vars: { target: "/x" } });
  assertRewrite(ok);
  equal(ok.upstream.path, "/x");
});

Deno.test("request-rewrite with an empty conf changes nothing", async () => {
  assertNone(await (await testPlugin(rewrite, {})).request({ path: "/a?b=1" }));
  assertNone(await (await testPlugin(rewrite, "")).request());
});

Deno.test("request-rewrite rejects bad confs naming the field", async () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ path: "relative" }, /path: expected a path starting with "\/"/],
    [{ path: "" }, /path: expected a non-empty string/],
    [{ host: 1 }, /host: expected a non-empty string, got 1/],
    [{ headers: { add: { "x-a": 1 } } }, /headers.add.x-a: expected a string or a non-empty list/],
    [{ headers: { remove: [1] } }, /headers.remove: expected a list of strings/],
    [{ headers: { remove: ["host"] } }, /headers.remove\[0\]: expected a header other than host/],
    [{ headers: { set: { "x-a": "${unterminated" } } }, /headers.set.x-a: unterminated "\$\{"/],
    [{ args: { add: {} } }, /args.add: unknown field \(expected set, remove\)/],
    [{ args: { set: { a: 1 } } }, /args.set.a: expected a string/],
    [
      { response_headers: { "content-type": "x" } },
      /response_headers.content-type: APISIX ignores/,
    ],
    [{ uri: "/x" }, /uri: unknown field/],
  ];
  for (const [conf, message] of cases) {
    await rejects(testPlugin(rewrite, conf), message, JSON.stringify(conf));
  }
});
