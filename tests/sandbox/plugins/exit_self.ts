/**
 * Attack: end its own worker or process (the sandbox would have to be restarted).
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import process from "node:process";
import { attempt } from "./attempts.ts";

export default definePlugin({
  name: "exit_self",
  async requestFilter(_conf, req, res) {
    if (!req.headers.has("x-go")) {
      res.body = "alive";
      return;
    }
    const scope = globalThis as unknown as Record<string, unknown>;
    const call = (value: unknown) => {
      if (typeof value !== "function") throw new ReferenceError("it is gone");
      return (value as () => unknown)();
    };
    await attempt(res, {
      denoExit: () => Deno.exit(0),
      selfClose: () => call(scope.close),
      protoClose: () => call((Object.getPrototypeOf(globalThis) as Record<string, unknown>).close),
      nodeExit: () => process.exit(0),
      nodeReallyExit: () =>
        (process as unknown as { reallyExit(code: number): void }).reallyExit(0),
    });
  },
});
