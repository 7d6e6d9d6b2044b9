/**
 * Attack: learn how the sandbox was started (its channel path and secret would open the
 * runner's private channel). `x-seen` reports everything the plugin can read about it.
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import process from "node:process";
import { attempt, headerValue } from "./attempts.ts";

export default definePlugin({
  name: "deno_args",
  async requestFilter(_conf, _req, res) {
    const seen = {
      args: Deno.args,
      argv: process.argv,
      execArgv: process.execArgv,
      mainModule: Deno.mainModule,
      // Readable without permission in a worker: the sandbox runs in "/".
      cwd: Deno.cwd(),
      location: (globalThis as unknown as { location?: unknown }).location ?? null,
    };
    res.headers.set("x-seen", headerValue(JSON.stringify(seen)));
    await attempt(res, {
      execPath: () => Deno.execPath(),
      cmdline: () => Deno.readTextFile("/proc/self/cmdline"),
      environ: () => Deno.readTextFile(`/proc/${Deno.pid}/environ`),
      fdLinks: () => Deno.readLink("/proc/self/fd/3"),
    });
  },
});
