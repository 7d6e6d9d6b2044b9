import { deepEqual, equal, notEqual, ok } from "node:assert/strict";
import { type ChainLink, ConfCache, type ConfCacheOptions } from "./conf_cache.ts";
import type { ConfHandle, PluginHost } from "../sandboxes/plugin_host.ts";

/** A stand-in plugin host that records which conf handles were released. */
function fakeHost(name: string, filters = { request: true, response: false }) {
  const released: number[] = [];
  const host = {
    settings: { name },
    filters,
    release(handle: ConfHandle) {
      released.push(handle.id);
    },
  } as unknown as PluginHost;
  return { host, released };
}

let nextHandle = 1;
function link(host: PluginHost): ChainLink {
  const handle: ConfHandle = { id: nextHandle++, raw: "{}", prefetch: null };
  return { host, handle };
}

/** Runs `fn` with `Date.now` under the test's control (the cache reads time from it). */
async function withClock(fn: (clock: { now: number }) => void | Promise<void>): Promise<void> {
  const real = Date.now;
  const clock = { now: 1_000_000 };
  Date.now = () => clock.now;
  try {
    await fn(clock);
  } finally {
    Date.now = real;
  }
}

function cache(options: Partial<ConfCacheOptions> = {}): ConfCache {
  return new ConfCache({ ttlMs: 4320_000, maxEntries: 1000, ...options });
}

Deno.test("ConfCache: tokens start at a random non-zero value per cache, then count up", () => {
  const firsts = new Set<number>();
  for (let i = 0; i < 8; i++) {
    const c = cache();
    const a = c.add(`k${i}`, []).token;
    const b = c.add(`k${i}-b`, []).token;
    notEqual(a, 0);
    ok(b === a + 1 || (a === 0xffff_ffff && b === 1), `${a} then ${b}`);
    firsts.add(a);
    c.close();
  }
  // Eight 32-bit random starts: a repeat would mean they are not random.
  equal(firsts.size, 8);
});

Deno.test("ConfCache: the same key gets the same entry; concurrent prepares build once", async () => {
  const c = cache();
  const { host } = fakeHost("p");
  try {
    let builds = 0;
    const build = async () => {
      builds++;
      await new Promise((resolve) => setTimeout(resolve, 5));
      return [link(host)];
    };
    const [a, b] = await Promise.all([
      c.prepare("route#1#x#1", build),
      c.prepare("route#1#x#1", build),
    ]);
    equal(builds, 1);
    equal(a, b);
    equal((await c.prepare("route#1#x#1", build)).token, a.token);
    equal(builds, 1);
    const other = await c.prepare("route#2#x#1", build);
    notEqual(other.token, a.token);
    // No key (APISIX before 2.9): a new entry every time.
    const x = await c.prepare("", build);
    const y = await c.prepare("", build);
    notEqual(x.token, y.token);
    equal(c.get(x.token), x);
    equal(builds, 4);
  } finally {
    c.close();
  }
});

Deno.test("ConfCache: lifetimes slide on every use and every PrepareConf of the key", async () => {
  await withClock((clock) => {
    const c = cache({ ttlMs: 2400 });
    try {
      const entry = c.add("route#1#x#1", []);
      clock.now += 2300;
      equal(c.get(entry.token), entry, "valid 2.3 s after issue");
      clock.now += 2300;
      equal(c.get(entry.token), entry, "valid 2.3 s after the last use");
      clock.now += 2300;
      equal(c.byKey("route#1#x#1"), entry, "a PrepareConf of the key refreshes it too");
      clock.now += 2300;
      equal(c.get(entry.token), entry);
      clock.now += 2401;
      equal(c.get(entry.token), undefined, "expired after the lifetime without use");
      equal(c.byKey("route#1#x#1"), undefined);
      equal(c.size, 0);
    } finally {
      c.close();
    }
  });
});

Deno.test("ConfCache: the sweeper drops unused entries and releases their confs", async () => {
  await withClock(async (clock) => {
    // ttl 100 ms: the sweep is armed for the first expiry, 100 ms after the adds.
    const c = cache({ ttlMs: 100 });
    const { host, released } = fakeHost("p");
    try {
      const kept = c.add("kept", [link(host)]);
      const dropped = c.add("dropped", [link(host)]);
      clock.now += 101;
      kept.lastUsed = clock.now;
      const deadline = performance.now() + 5000;
      while (c.size > 1 && performance.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      equal(c.size, 1);
      deepEqual(released, [dropped.links[0]!.handle.id]);
      equal(c.get(kept.token), kept);
    } finally {
      c.close();
    }
  });
});

Deno.test("ConfCache: the size bound evicts the least recently used entry and releases its confs", async () => {
  await withClock((clock) => {
    const c = cache({ maxEntries: 3 });
    const { host, released } = fakeHost("p");
    try {
      const a = c.add("a", [link(host), link(host)]);
      clock.now += 1;
      const b = c.add("b", [link(host)]);
      clock.now += 1;
      const d = c.add("d", [link(host)]);
      clock.now += 1;
      c.get(a.token); // a is now the most recently used; b the least
      const e = c.add("e", []);
      equal(c.size, 3);
      equal(c.get(b.token), undefined);
      deepEqual(released, [b.links[0]!.handle.id]);
      for (const entry of [a, d, e]) equal(c.get(entry.token), entry);
      // Filling it further keeps it at the bound.
      for (let i = 0; i < 50; i++) {
        clock.now += 1;
        c.add(`more-${i}`, [link(host)]);
      }
      equal(c.size, 3);
      equal(released.length, 1 + 2 + 1 + 47);
    } finally {
      c.close();
    }
  });
});

Deno.test("ConfCache: replacing a key or closing releases the confs; chains split by filter", () => {
  const c = cache();
  const request = fakeHost("req", { request: true, response: false });
  const response = fakeHost("resp", { request: false, response: true });
  const both = fakeHost("both", { request: true, response: true });
  const links = [link(request.host), link(response.host), link(both.host)];
  const entry = c.add("route#1#x#1", links);
  deepEqual(entry.requestChain.map((l) => l.host.settings.name), ["req", "both"]);
  deepEqual(entry.responseChain.map((l) => l.host.settings.name), ["resp", "both"]);
  const replaced = c.add("route#1#x#1", [link(request.host)]);
  notEqual(replaced.token, entry.token);
  equal(c.get(entry.token), undefined);
  deepEqual(request.released, [links[0]!.handle.id]);
  deepEqual(response.released, [links[1]!.handle.id]);
  c.close();
  equal(c.size, 0);
  deepEqual(request.released, [links[0]!.handle.id, replaced.links[0]!.handle.id]);
});
