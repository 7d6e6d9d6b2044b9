import { deepEqual, equal, rejects } from "node:assert/strict";
import { testChain, testPlugin } from "../testing/mod.ts";
import responseRewrite, { compileFilter, expandReplacement } from "./response_rewrite.ts";

const upstream = {
  status: 200,
  headers: {
    "Content-Type": "text/plain",
    "Content-Length": "11",
    Server: "upstream",
    "X-Old": "1",
  },
  body: "hello world",
};

Deno.test("response-rewrite sets status, headers and body without reading the old body", async () => {
  const plugin = await testPlugin(responseRewrite, {
    status: 201,
    headers: { "X-Server": "deno", "x-old": ["a", "b"] },
    body: "replaced",
  });
  const outcome = await plugin.response(upstream);
  equal(outcome.status, 201);
  equal(outcome.text, "replaced");
  deepEqual(outcome.asks, []);
  // Untouched upstream headers keep their place and case; changed names follow.
  deepEqual(outcome.wire.headers, [
    ["Content-Type", "text/plain"],
    ["Server", "upstream"],
    ["x-server", "deno"],
    ["x-old", "a"],
    ["x-old", "b"],
  ]);
  equal(outcome.wire.status, 201);
  equal(outcome.headers.get("content-length"), null);
});

Deno.test("response-rewrite accepts APISIX's {add, set, remove} header form", async () => {
  const plugin = await testPlugin(responseRewrite, {
    headers: { add: { "x-old": "2" }, set: { "x-new": "n" }, remove: ["Server"] },
  });
  const outcome = await plugin.response(upstream);
  equal(outcome.status, 200);
  equal(outcome.wire.status, 0);
  equal(outcome.wire.body, null);
  equal(outcome.text, "hello world");
  deepEqual(outcome.headers.getAll("x-old"), ["1", "2"]);
  equal(outcome.headers.get("x-new"), "n");
  equal(outcome.headers.has("server"), false);
});

Deno.test("response-rewrite filters replace once or globally, with captures", async () => {
  const plugin = await testPlugin(responseRewrite, {
    filters: [
      { regex: "(\\w+)@example\\.com", scope: "global", replace: "$1@example.org" },
      { regex: "(?i)SECRET", replace: "******" },
      { regex: "(?P<n>\\d+) USD", scope: "global", replace: "${n} EUR ($$)" },
    ],
    body: "ignored when there are filters",
  });
  const outcome = await plugin.response({
    body: "ann@example.com, bob@example.com: secret Secret 5 USD 7 USD",
  });
  equal(
    outcome.text,
    "ann@example.org, bob@example.org: ****** Secret 5 EUR ($) 7 EUR ($)",
  );
  deepEqual(outcome.asks, [{ kind: "respBody" }]);
});

Deno.test("response-rewrite leaves the body alone when no filter matches", async () => {
  const plugin = await testPlugin(responseRewrite, { filters: [{ regex: "absent" }] });
  const outcome = await plugin.response(upstream);
  equal(outcome.wire.body, null);
  equal(outcome.text, "hello world");
  deepEqual(outcome.asks, [{ kind: "respBody" }]);
});

Deno.test("response-rewrite keeps bytes that are not UTF-8 while filtering", async () => {
  const plugin = await testPlugin(responseRewrite, { filters: [{ regex: "cat", replace: "dög" }] });
  const body = Uint8Array.from([0xff, 0x00, ...new TextEncoder().encode("cat"), 0x80]);
  const outcome = await plugin.response({ body });
  deepEqual([...outcome.body], [0xff, 0x00, ...new TextEncoder().encode("dög"), 0x80]);
});

Deno.test("response-rewrite decompresses a gzip body to filter it and sends it plain", async () => {
  const gzipped = new Uint8Array(
    await new Response(
      new Blob(["hello gzip"]).stream().pipeThrough(new CompressionStream("gzip")),
    ).arrayBuffer(),
  );
  const plugin = await testPlugin(responseRewrite, {
    filters: [{ regex: "gzip", replace: "plain" }],
  });
  const outcome = await plugin.response({
    headers: { "Content-Encoding": "gzip", "Content-Type": "text/plain" },
    body: gzipped,
  });
  equal(outcome.text, "hello plain");
  equal(outcome.headers.has("content-encoding"), false);
  equal(outcome.headers.get("content-type"), "text/plain");

  const brotli = await plugin.response({ headers: { "Content-Encoding": "br" }, body: "x" });
  equal(brotli.wire.body, null);
  deepEqual(brotli.asks, []);
});

Deno.test("response-rewrite sees the body an earlier plugin set, and asks APISIX once", async () => {
  const chain = await testChain([
    [responseRewrite, { filters: [{ regex: "a", scope: "global", replace: "b" }] }],
    [responseRewrite, { filters: [{ regex: "b", scope: "global", replace: "c" }] }],
  ]);
  const outcome = await chain.response({ body: "aaa" });
  equal(outcome.text, "ccc");
  deepEqual(outcome.asks, [{ kind: "respBody" }]);
});

Deno.test("compileFilter and expandReplacement follow Go and APISIX conventions", () => {
  equal(compileFilter("(?is)a.b", false).flags, "is");
  equal(compileFilter("x", true).flags, "g");
  const match = /(a)(b)?(?<name>c)/.exec("ac")!;
  equal(
    expandReplacement("[$0|$1|${1}|$2|${name}|$$|$9|${none}]", match),
    "[ac|a|a||c|$|$9|${none}]",
  );
});

Deno.test("response-rewrite rejects bad confs naming the field", async () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ status: 0 }, /status: expected an integer from 100 to 599, got 0/],
    [{ headers: { "x-a": 1 } }, /headers.x-a: expected a string or a non-empty list/],
    [{ body: 1 }, /body: expected a string, got 1/],
    [{ filters: {} }, /filters: expected a list of \{regex, scope, replace\} objects/],
    [{ filters: ["x"] }, /filters\[0\]: expected an object with regex, scope and replace/],
    [{ filters: [{ regex: "" }] }, /filters\[0\].regex: expected a non-empty string/],
    [{ filters: [{ regex: "(" }] }, /filters\[0\].regex: expected a valid regular expression/],
    [{ filters: [{ regex: "(?U)a" }] }, /inline flag "U" is not supported/],
    [
      { filters: [{ regex: "a", scope: "all" }] },
      /filters\[0\].scope: expected "once" or "global"/,
    ],
    [{ filters: [{ regex: "a", replace: 1 }] }, /filters\[0\].replace: expected a string/],
    [{ filters: [{ regex: "a", option: "jo" }] }, /filters\[0\].option: unknown field/],
  ];
  for (const [conf, message] of cases) {
    await rejects(testPlugin(responseRewrite, conf), message, JSON.stringify(conf));
  }
});
