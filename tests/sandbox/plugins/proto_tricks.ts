/**
 * Attack: recover the removed channel to the parent (`postMessage`) and `close` through the
 * prototype chain and the worker scope's classes, and flood the parent with what it finds.
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { attempt } from "./attempts.ts";

type Post = (message: unknown) => void;

function flood(post: unknown, self: unknown = globalThis): string {
  if (typeof post !== "function") throw new ReferenceError("postMessage is gone");
  for (let i = 0; i < 100_000; i++) (post as Post).call(self, new ArrayBuffer(64));
  return "flooded";
}

export default definePlugin({
  name: "proto_tricks",
  async requestFilter(_conf, _req, res) {
    const scope = globalThis as unknown as Record<string, unknown>;
    const proto = Object.getPrototypeOf(globalThis) as Record<string, unknown>;
    const classProto = (name: string) =>
      ((scope[name] as { prototype?: Record<string, unknown> } | undefined)?.prototype) ?? {};
    await attempt(res, {
      global: () => flood(scope.postMessage),
      selfPost: () => flood((scope.self as Record<string, unknown> | undefined)?.postMessage),
      prototype: () => flood(proto.postMessage),
      prototypeChain: () => {
        for (let o: object | null = globalThis; o; o = Object.getPrototypeOf(o)) {
          const found = Object.getOwnPropertyDescriptor(o, "postMessage")?.value;
          if (found) return flood(found);
        }
        throw new ReferenceError("no postMessage anywhere on the chain");
      },
      dedicatedScope: () => flood(classProto("DedicatedWorkerGlobalScope").postMessage),
      workerScope: () => flood(classProto("WorkerGlobalScope").postMessage),
      constructorProto: () =>
        flood(
          ((scope.constructor as { prototype?: Record<string, unknown> })?.prototype)?.postMessage,
        ),
      close: () => {
        const close = proto.close ?? classProto("DedicatedWorkerGlobalScope").close;
        if (typeof close !== "function") throw new ReferenceError("close is gone");
        close.call(globalThis);
        return "closed";
      },
    });
  },
});
