/**
 * Writes to the console and to stdio every way it can: console lines are logged under the
 * plugin's name, `process.stdout` goes through the console, and raw writes to file
 * descriptors 1 and 2 end in /dev/null or the sandbox's rate-limited stderr.
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { writeSync } from "node:fs";
import process from "node:process";
import { attempt } from "./attempts.ts";

export default definePlugin({
  name: "console_output",
  async requestFilter(_conf, _req, res) {
    console.log("console.log from the plugin", { n: 1 });
    console.error("console.error from the plugin");
    process.stdout.write("process.stdout.write from the plugin\n");
    const deno = Deno as unknown as Record<string, { writeSync?(b: Uint8Array): number }>;
    await attempt(res, {
      denoStdout: () => deno.stdout!.writeSync!(new TextEncoder().encode("Deno.stdout\n")),
      denoStderr: () => deno.stderr!.writeSync!(new TextEncoder().encode("Deno.stderr\n")),
      denoStdin: () => (deno.stdin as unknown as Deno.FsFile).read(new Uint8Array(1)),
      nodeStdin: () => process.stdin.read(),
    });
    // Not refused, but harmless: fd 1 is /dev/null in a sandbox and fd 2 is read at a limited rate.
    writeSync(1, "fd 1 from the plugin\n");
    writeSync(2, "fd 2 from the plugin\n");
  },
});
