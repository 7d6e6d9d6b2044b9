import { deepEqual, equal, rejects } from "node:assert/strict";
import { assertNone, assertStop, testPlugin } from "../testing/mod.ts";
import faultInjection, { type Chance, createFaultInjection } from "./fault_injection.ts";

/** Randomness that returns the given values in turn, and records waits. */
function fakeChance(...values: number[]): Chance & { waits: number[] } {
  const waits: number[] = [];
  let i = 0;
  return {
    random: () => values[i++ % values.length]!,
    sleep(ms) {
      waits.push(ms);
      return Promise.resolve();
    },
    waits,
  };
}

Deno.test("fault-injection answers every request with the Go runner's conf", async () => {
  const plugin = await testPlugin(faultInjection, { http_status: 503, body: "injected" });
  for (let i = 0; i < 5; i++) {
    const outcome = await plugin.request();
    assertStop(outcome);
    equal(outcome.status, 503);
    equal(outcome.text, "injected");
    deepEqual(outcome.asks, []);
  }
});

Deno.test("fault-injection hits the configured percentage of requests", async () => {
  // random() * 100 below the percentage is a hit: 0.29 hits at 30 %, 0.30 does not.
  const plugin = await testPlugin(createFaultInjection(fakeChance(0.29, 0.3, 0, 0.99)), {
    http_status: 500,
    percentage: 30,
  });
  assertStop(await plugin.request());
  assertNone(await plugin.request());
  assertStop(await plugin.request());
  assertNone(await plugin.request());
  const never = await testPlugin(faultInjection, { http_status: 500, percentage: 0 });
  for (let i = 0; i < 20; i++) assertNone(await never.request());
});

Deno.test("fault-injection delays hit requests, then answers or proxies them", async () => {
  const chance = fakeChance(0);
  const abort = await testPlugin(createFaultInjection(chance), { http_status: 504, delay: 0.25 });
  const outcome = await abort.request();
  assertStop(outcome);
  equal(outcome.status, 504);
  equal(outcome.body.length, 0);
  const slow = await testPlugin(createFaultInjection(chance), { delay: 1.5 });
  assertNone(await slow.request());
  deepEqual(chance.waits, [250, 1500]);
});

Deno.test("the bundled fault-injection waits on the real clock", async () => {
  const plugin = await testPlugin(faultInjection, { delay: 0.05 });
  const started = performance.now();
  assertNone(await plugin.request());
  const waited = performance.now() - started;
  equal(waited >= 45, true, `waited ${waited} ms`);
});

Deno.test("fault-injection rejects bad confs naming the field", async () => {
  const cases: Array<[unknown, RegExp]> = [
    [{}, /http_status: expected a status from 200 to 599 \(or a delay\)/],
    [{ http_status: 199 }, /http_status: expected an integer from 200 to 599, got 199/],
    [{ http_status: 500, percentage: 101 }, /percentage: expected an integer from 0 to 100/],
    [{ http_status: 500, percentage: 2.5 }, /percentage: expected an integer from 0 to 100/],
    [{ http_status: 500, body: 1 }, /body: expected a string, got 1/],
    [{ delay: 0 }, /delay: expected a number above 0 and at most 55, got 0/],
    [{ delay: 60 }, /delay: expected a number above 0 and at most 55, got 60/],
    [{ abort: {} }, /abort: unknown field \(expected http_status, body, percentage, delay\)/],
  ];
  for (const [conf, message] of cases) {
    await rejects(testPlugin(faultInjection, conf), message, JSON.stringify(conf));
  }
});
