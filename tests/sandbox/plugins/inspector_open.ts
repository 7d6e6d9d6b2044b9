/**
 * Attack: open Deno's inspector from inside the sandbox (node:inspector, or SIGUSR1 through
 * node's private helpers), which would expose the sandbox's trusted main thread.
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { attempt } from "./attempts.ts";

export default definePlugin({
  name: "inspector_open",
  async requestFilter(_conf, _req, res) {
    const computed = (specifier: string) => import(specifier);
    await attempt(res, {
      nodeInspector: async () => {
        const inspector = await computed("node:inspector");
        inspector.open(0, "127.0.0.1");
        return inspector.url();
      },
      inspectorPromises: () => computed("node:inspector/promises"),
      bareInspector: () => computed("inspector"),
      nodeModule: async () => {
        const { registerHooks } = await computed("node:module");
        registerHooks({
          resolve: (s: string, c: unknown, next: (s: string, c: unknown) => unknown) => next(s, c),
        });
        return "hooked";
      },
      nodeV8: async () => {
        const v8 = await computed("node:v8");
        v8.setFlagsFromString("--allow-natives-syntax");
        return "flags set";
      },
    });
  },
});
