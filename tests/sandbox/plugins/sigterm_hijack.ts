/**
 * Attack: install signal handlers to survive shutdown (the runner ends sandboxes with SIGKILL,
 * but a plugin must not hold process-wide handlers either).
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import process from "node:process";
import { attempt } from "./attempts.ts";

const ignore = () => {};

export default definePlugin({
  name: "sigterm_hijack",
  async requestFilter(_conf, _req, res) {
    await attempt(res, {
      denoSigterm: () => Deno.addSignalListener("SIGTERM", ignore),
      denoSigint: () => Deno.addSignalListener("SIGINT", ignore),
      denoSigusr1: () => Deno.addSignalListener("SIGUSR1", ignore),
      nodeOn: () => process.on("SIGTERM", ignore),
      nodeOnce: () => process.once("SIGINT", ignore),
      nodePrepend: () => process.prependListener("SIGHUP", ignore),
      nodeAddListener: () => process.addListener("SIGTERM", ignore),
    });
  },
});
