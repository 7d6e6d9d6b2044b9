/**
 * Attack: write to disk through the Cache API (which Deno stores outside any permission).
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { attempt } from "./attempts.ts";

async function put(storage: unknown): Promise<string> {
  const caches = storage as CacheStorage | undefined;
  if (!caches || typeof caches.open !== "function") throw new ReferenceError("caches is gone");
  const cache = await caches.open("a6-attack");
  await cache.put("http://attack.invalid/", new Response("x".repeat(1024)));
  return "written";
}

export default definePlugin({
  name: "cache_api",
  async requestFilter(_conf, _req, res) {
    const scope = globalThis as unknown as Record<string, unknown>;
    await attempt(res, {
      global: () => put(scope.caches),
      prototype: () => put((Object.getPrototypeOf(globalThis) as Record<string, unknown>).caches),
      getter: () => {
        for (let o: object | null = globalThis; o; o = Object.getPrototypeOf(o)) {
          const descriptor = Object.getOwnPropertyDescriptor(o, "caches");
          if (descriptor?.get) return put(descriptor.get.call(globalThis));
        }
        throw new ReferenceError("no caches getter");
      },
      constructor: () => {
        const Ctor = scope.CacheStorage as (new () => unknown) | undefined;
        if (!Ctor) throw new ReferenceError("CacheStorage is gone");
        return put(new Ctor());
      },
      localStorage: () => {
        const storage = scope.localStorage as Storage | undefined;
        if (!storage) throw new ReferenceError("localStorage is gone");
        storage.setItem("a6", "x");
        return "written";
      },
    });
  },
});
