/**
 * Attack: start a nested worker (with more permissions, or just without the sandbox's
 * hardening) through every constructor that exists in Deno.
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import process from "node:process";
import { attempt } from "./attempts.ts";

const child = new URL("./nested_child.ts", import.meta.url);
type WorkerCtor = new (url: URL | string, options?: unknown) => unknown;

function start(Ctor: unknown, options?: unknown): string {
  if (typeof Ctor !== "function") throw new ReferenceError("Worker is gone");
  new (Ctor as WorkerCtor)(child, options);
  return "started";
}

export default definePlugin({
  name: "nested_worker",
  async requestFilter(_conf, _req, res) {
    const scope = globalThis as unknown as Record<string, unknown>;
    const allPermissions = { type: "module", deno: { permissions: "inherit" } };
    await attempt(res, {
      global: () => start(scope.Worker, allPermissions),
      morePermissions: () =>
        start(scope.Worker, { type: "module", deno: { permissions: { read: true, run: true } } }),
      prototype: () => start((Object.getPrototypeOf(globalThis) as Record<string, unknown>).Worker),
      workerThreads: async () => start((await import("node:" + "worker_threads")).Worker),
      workerThreadsEval: async () => {
        const { Worker } = await import("node:worker_threads");
        new Worker("process.kill(process.pid, 'SIGUSR1')", { eval: true });
        return "started";
      },
      getBuiltinModule: () =>
        start(
          (process as unknown as { getBuiltinModule(id: string): Record<string, unknown> })
            .getBuiltinModule("node:worker_threads").Worker,
        ),
      commonJsRequire: () => import("./nested_require.cjs"),
      sharedWorker: () => start(scope.SharedWorker),
    });
  },
});
