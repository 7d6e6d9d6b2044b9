import { deepEqual, equal, rejects } from "node:assert/strict";
import { assertRewrite, testChain, testPlugin } from "../testing/mod.ts";
import bodyRewrite from "./request_body_rewrite.ts";
import say from "./say.ts";
import { definePlugin } from "../mod.ts";

Deno.test("request-body-rewrite replaces the body without reading the old one", async () => {
  const plugin = await testPlugin(bodyRewrite, { new_body: "request body rewrite" });
  const outcome = await plugin.request({ method: "POST", body: "original" });
  assertRewrite(outcome);
  equal(outcome.upstream.text, "request body rewrite");
  equal(new TextDecoder().decode(outcome.wire.body!), "request body rewrite");
  deepEqual(outcome.asks, []);
});

Deno.test("request-body-rewrite's body is what the next plugin reads", async () => {
  const echo = definePlugin({
    name: "echo",
    async requestFilter(_conf, req, res) {
      res.body = `got ${await req.text()}`;
    },
  });
  const chain = await testChain([[bodyRewrite, { new_body: '{"a":1}' }], [echo]]);
  const outcome = await chain.request({ body: "old" });
  equal(outcome.action, "stop");
  if (outcome.action === "stop") equal(outcome.text, 'got {"a":1}');
  // The replaced body is served from the chain, not asked from APISIX.
  deepEqual(outcome.asks, []);
  // A chain that answers first never runs the rewrite's successor.
  const stopped = await (await testChain([[say, { body: "x" }], [bodyRewrite, { new_body: "y" }]]))
    .request();
  equal(stopped.action, "stop");
});

Deno.test("request-body-rewrite rejects confs without a non-empty new_body", async () => {
  await rejects(testPlugin(bodyRewrite, {}), /new_body: expected a non-empty string, got nothing/);
  await rejects(testPlugin(bodyRewrite, { new_body: "" }), /new_body: expected a non-empty string/);
  await rejects(
    testPlugin(bodyRewrite, { new_body: 5 }),
    /new_body: expected a non-empty string, got 5/,
  );
  await rejects(
    testPlugin(bodyRewrite, { body: "x" }),
    /body: unknown field \(expected new_body\)/,
  );
});
