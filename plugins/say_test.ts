import { deepEqual, equal, rejects } from "node:assert/strict";
import { assertStop, testPlugin } from "../testing/mod.ts";
import say from "./say.ts";

Deno.test("say answers with the body, status 200 by default, and asks APISIX nothing", async () => {
  const plugin = await testPlugin(say, { body: "hello" });
  const outcome = await plugin.request({ path: "/anything", method: "POST", body: "ignored" });
  assertStop(outcome);
  equal(outcome.status, 200);
  equal(outcome.text, "hello");
  deepEqual(outcome.wire.headers, []);
  deepEqual(outcome.asks, []);
});

Deno.test("say sends the configured status and headers, a list value once per value", async () => {
  const plugin = await testPlugin(say, {
    body: "gone",
    status: 410,
    headers: { "X-Reason": "moved", "Set-Cookie": ["a=1", "b=2"] },
  });
  const outcome = await plugin.request();
  assertStop(outcome);
  equal(outcome.status, 410);
  deepEqual(outcome.wire.headers, [
    ["x-reason", "moved"],
    ["set-cookie", "a=1"],
    ["set-cookie", "b=2"],
  ]);
  deepEqual(outcome.headers.getSetCookie(), ["a=1", "b=2"]);
});

Deno.test("say accepts the Go runner's conf unchanged and an empty body", async () => {
  const go = await testPlugin(say, '{"body":"hello"}');
  const outcome = await go.request();
  assertStop(outcome);
  equal(outcome.text, "hello");
  const empty = await (await testPlugin(say, { body: "" })).request();
  assertStop(empty);
  equal(empty.body.length, 0);
  equal(empty.wire.body, null);
});

Deno.test("say sends non-ASCII header text as its UTF-8 bytes", async () => {
  const outcome = await (await testPlugin(say, { body: "x", headers: { "x-city": "Zürich" } }))
    .request();
  assertStop(outcome);
  const bytes = Uint8Array.from(outcome.headers.get("x-city")!, (c) => c.charCodeAt(0));
  equal(new TextDecoder().decode(bytes), "Zürich");
});

Deno.test("say rejects bad confs naming the field and what it expects", async () => {
  const cases: Array<[unknown, RegExp]> = [
    ["not json", /the conf is not valid JSON/],
    [[], /the conf: expected a JSON object, got \[\]/],
    [{}, /body: expected a string, got nothing/],
    [{ body: 1 }, /body: expected a string, got 1/],
    [{ body: "x", status: 99 }, /status: expected an integer from 100 to 599, got 99/],
    [{ body: "x", status: "200" }, /status: expected an integer from 100 to 599, got "200"/],
    [{ body: "x", headers: [] }, /headers: expected an object/],
    [{ body: "x", headers: { "x a": "1" } }, /headers.x a: expected a header name/],
    [{ body: "x", headers: { "x-a": 1 } }, /headers.x-a: expected a string or a non-empty list/],
    [{ body: "x", headers: { "x-a": "a\r\nb" } }, /without NUL, CR or LF/],
    [{ body: "x", stauts: 200 }, /stauts: unknown field \(expected body, status, headers\)/],
  ];
  for (const [conf, message] of cases) {
    await rejects(testPlugin(say, conf), message, JSON.stringify(conf));
  }
});
