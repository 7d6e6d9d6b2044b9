import { deepEqual, equal, rejects } from "node:assert/strict";
import { assertNone, assertStop, testPlugin } from "../testing/mod.ts";
import limitReq, { Buckets, type Clock, createLimitReq } from "./limit_req.ts";

/** A clock that only moves when told to, recording the waits the plugin asks for. */
function fakeClock(): Clock & { advance(ms: number): void; waits: number[] } {
  let now = 1_000;
  const waits: number[] = [];
  return {
    now: () => now,
    sleep(ms) {
      waits.push(ms);
      return Promise.resolve();
    },
    advance(ms) {
      now += ms;
    },
    waits,
  };
}

Deno.test("limit-req passes one request per 1/rate seconds and rejects the rest with 503", async () => {
  const clock = fakeClock();
  const plugin = await testPlugin(createLimitReq(clock), { rate: 2, burst: 0 });
  assertNone(await plugin.request());
  const rejected = await plugin.request();
  assertStop(rejected);
  equal(rejected.status, 503);
  equal(rejected.body.length, 0);
  clock.advance(499);
  assertStop(await plugin.request());
  clock.advance(1);
  assertNone(await plugin.request());
  deepEqual(clock.waits, []);
});

Deno.test("limit-req delays a burst to the rate, then rejects beyond it", async () => {
  const clock = fakeClock();
  const plugin = await testPlugin(createLimitReq(clock), { rate: 10, burst: 2 });
  for (let i = 0; i < 3; i++) assertNone(await plugin.request());
  deepEqual(clock.waits, [100, 200]);
  assertStop(await plugin.request());
  // 150 ms later 1.5 requests have drained: 2 - 1.5 + 1 = 1.5 fits, waiting 150 ms.
  clock.advance(150);
  assertNone(await plugin.request());
  deepEqual(clock.waits, [100, 200, 150]);
});

Deno.test("limit-req waits in whole milliseconds: less than 1 ms is no wait (as nginx)", async () => {
  const clock = fakeClock();
  // 4,000 a second: each request in the burst adds 0.25 ms.
  const plugin = await testPlugin(createLimitReq(clock), { rate: 4000, burst: 10 });
  for (let i = 0; i < 10; i++) assertNone(await plugin.request());
  // The first request opens the bucket; then excess 1 to 9: 0.25 ms to 2.25 ms, floored.
  deepEqual(clock.waits, [1, 1, 1, 1, 2, 2]);
});

Deno.test("limit-req with nodelay passes the burst at once", async () => {
  const clock = fakeClock();
  const plugin = await testPlugin(createLimitReq(clock), { rate: 1, burst: 3, nodelay: true });
  for (let i = 0; i < 4; i++) assertNone(await plugin.request());
  assertStop(await plugin.request());
  deepEqual(clock.waits, []);
});

Deno.test("limit-req answers with the configured code and message", async () => {
  const plugin = await testPlugin(createLimitReq(fakeClock()), {
    rate: 1,
    rejected_code: 429,
    rejected_msg: "slow down",
  });
  await plugin.request();
  const rejected = await plugin.request();
  assertStop(rejected);
  equal(rejected.status, 429);
  equal(rejected.text, "slow down");
});

Deno.test("limit-req keeps a bucket per key variable, falling back to the client address", async () => {
  const clock = fakeClock();
  const plugin = await testPlugin(createLimitReq(clock), { rate: 1, key: "http_x_api_key" });
  const alice = await plugin.request({ vars: { http_x_api_key: "alice" } });
  assertNone(alice);
  deepEqual(alice.asks, [{ kind: "var", name: "http_x_api_key" }]);
  assertNone(await plugin.request({ vars: { http_x_api_key: "bob" } }));
  assertStop(await plugin.request({ vars: { http_x_api_key: "alice" } }));
  // Unset key: counted per client address.
  assertNone(await plugin.request({ srcIp: "10.0.0.1" }));
  assertNone(await plugin.request({ srcIp: "10.0.0.2" }));
  assertStop(await plugin.request({ srcIp: "10.0.0.1" }));
  equal(plugin.conf.buckets.size, 4);
});

Deno.test("limit-req keys by a combination of variables", async () => {
  const plugin = await testPlugin(createLimitReq(fakeClock()), {
    rate: 1,
    key: "$remote_addr $http_user_agent",
  });
  const vars = { remote_addr: "1.1.1.1", http_user_agent: "curl" };
  const first = await plugin.request({ vars });
  assertNone(first);
  deepEqual(first.asks, [
    { kind: "var", name: "remote_addr" },
    { kind: "var", name: "http_user_agent" },
  ]);
  assertNone(await plugin.request({ vars: { ...vars, http_user_agent: "wget" } }));
  assertStop(await plugin.request({ vars }));
});

Deno.test("limit-req state is per parsed conf (per route)", async () => {
  const clock = fakeClock();
  const plugin = createLimitReq(clock);
  const routeA = await testPlugin(plugin, { rate: 1 });
  const routeB = await testPlugin(plugin, { rate: 1 });
  assertNone(await routeA.request());
  assertNone(await routeB.request());
  assertStop(await routeA.request());
});

Deno.test("limit-req forgets the least recently seen key beyond its limit", () => {
  const buckets = new Buckets(1, 0, 2);
  equal(buckets.take("a", 0), 0);
  equal(buckets.take("b", 0), 0);
  // A rejected request counts as seen: "a" becomes the most recent key.
  equal(buckets.take("a", 0), null);
  equal(buckets.take("c", 0), 0);
  equal(buckets.size, 2);
  // "b" was forgotten, so it starts afresh; "a" was kept and is still limited.
  equal(buckets.take("a", 0), null);
  equal(buckets.take("b", 0), 0);
});

Deno.test("the bundled limit-req waits on the real clock", async () => {
  const plugin = await testPlugin(limitReq, { rate: 20, burst: 1 });
  assertNone(await plugin.request());
  const started = performance.now();
  assertNone(await plugin.request());
  // Scheduled to wait about 50 ms; a timer never fires early by more than a millisecond.
  const waited = performance.now() - started;
  equal(waited >= 45, true, `waited ${waited} ms`);
});

Deno.test("limit-req rejects bad confs naming the field", async () => {
  const cases: Array<[unknown, RegExp]> = [
    [{}, /rate: expected a number above 0 and at most 1000000, got nothing/],
    [{ rate: 0 }, /rate: expected a number above 0/],
    [{ rate: "5" }, /rate: expected a number above 0 and at most 1000000, got "5"/],
    [{ rate: 1, burst: -1 }, /burst: expected a number above -1/],
    [{ rate: 1, key: "" }, /key: expected a non-empty string/],
    [{ rate: 1, key: "$" }, /key: expected a variable name or a combination/],
    [{ rate: 1, rejected_code: 100 }, /rejected_code: expected an integer from 200 to 599/],
    [{ rate: 1, nodelay: 1 }, /nodelay: expected true or false, got 1/],
    [{ rate: 1, per: "minute" }, /per: unknown field/],
  ];
  for (const [conf, message] of cases) {
    await rejects(testPlugin(limitReq, conf), message, JSON.stringify(conf));
  }
});
