import { deepEqual, equal } from "node:assert/strict";
import { LineLimiter } from "./line_limiter.ts";

Deno.test("LineLimiter lets the first lines of a second through and reports the rest once", async () => {
  const reports: Array<[number, number]> = [];
  const limiter = new LineLimiter(() => 3, (held, perSecond) => reports.push([held, perSecond]));
  const allowed = Array.from({ length: 10 }, () => limiter.allow());
  deepEqual(allowed, [true, true, true, false, false, false, false, false, false, false]);
  deepEqual(reports, [], "nothing is reported before the second ends");
  await new Promise((resolve) => setTimeout(resolve, 1100));
  deepEqual(reports, [[7, 3]]);
  equal(limiter.allow(), true, "a new second has a new budget");
  await new Promise((resolve) => setTimeout(resolve, 1100));
  deepEqual(reports, [[7, 3]], "a second without held lines reports nothing");
});

Deno.test("LineLimiter with a budget of zero holds every line", async () => {
  const reports: number[] = [];
  const limiter = new LineLimiter(() => 0, (held) => reports.push(held));
  equal(limiter.allow(), false);
  equal(limiter.allow(), false);
  await new Promise((resolve) => setTimeout(resolve, 1100));
  deepEqual(reports, [2]);
});
