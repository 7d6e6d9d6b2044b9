/**
 * Attack: talk to another plugin in the same sandbox process (`broadcast_victim`, in the same
 * shared group) over BroadcastChannel, however it can be reached.
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import process from "node:process";
import { attempt } from "./attempts.ts";

type Channel = new (name: string) => { postMessage(message: unknown): void };

function send(Ctor: unknown): string {
  if (typeof Ctor !== "function") throw new ReferenceError("BroadcastChannel is gone");
  new (Ctor as Channel)("a6-victim").postMessage("hello from the attacker");
  return "sent";
}

export default definePlugin({
  name: "broadcast",
  async requestFilter(_conf, _req, res) {
    const scope = globalThis as unknown as Record<string, unknown>;
    await attempt(res, {
      global: () => send(scope.BroadcastChannel),
      prototype: () =>
        send((Object.getPrototypeOf(globalThis) as Record<string, unknown>).BroadcastChannel),
      selfConstructor: () => send(Reflect.get(globalThis, "BroadcastChannel")),
      workerThreads: async () => send((await import("node:" + "worker_threads")).BroadcastChannel),
      getBuiltinModule: () =>
        send(
          (process as unknown as { getBuiltinModule(id: string): Record<string, unknown> })
            .getBuiltinModule("worker_threads").BroadcastChannel,
        ),
      webLocks: () => navigator.locks.request("a6-victim", () => "locked"),
    });
  },
});
