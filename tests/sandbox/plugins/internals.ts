/**
 * Attack: reach Deno's internals (ops, the bootstrap object, the internal namespace symbol).
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { attempt, present } from "./attempts.ts";

export default definePlugin({
  name: "internals",
  async requestFilter(_conf, _req, res) {
    const deno = Deno as unknown as Record<PropertyKey, unknown>;
    const scope = globalThis as unknown as Record<string, unknown>;
    await attempt(res, {
      internalSymbol: () => {
        const internal = deno[Symbol.for("Deno.internal")];
        if (internal === undefined || Object.keys(internal as object).length === 0) {
          throw new ReferenceError("Deno[Deno.internal] is empty");
        }
        return Object.keys(internal as object).join(",");
      },
      internalProperty: () => {
        const key = deno.internal;
        const value = typeof key === "symbol" ? deno[key] : key;
        return present("Deno[Deno.internal]", value);
      },
      core: () => present("Deno.core", deno.core),
      bootstrap: () => present("__bootstrap", scope.__bootstrap),
      nodeBootstrap: () => {
        const boot = scope.nodeBootstrap;
        if (typeof boot !== "function") throw new ReferenceError("nodeBootstrap is gone");
        boot({ runningOnMainThread: true });
        return "ran";
      },
      extImport: () => import("ext:core/ops" as string),
    });
  },
});
