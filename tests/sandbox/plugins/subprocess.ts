/**
 * Attack: start a process (run is never granted to sandboxed plugins).
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { attempt } from "./attempts.ts";

export default definePlugin({
  name: "subprocess",
  async requestFilter(_conf, _req, res) {
    const childProcess = await import("node:child_process");
    const DenoCommand = (Deno as unknown as { Command: typeof Deno.Command }).Command;
    await attempt(res, {
      denoCommand: () => new DenoCommand("id").outputSync(),
      denoCommandSpawn: () => new DenoCommand("/bin/sh", { args: ["-c", "id"] }).spawn(),
      nodeExecSync: () => childProcess.execSync("id").toString(),
      nodeSpawnSync: () => {
        const result = childProcess.spawnSync("/bin/sh", ["-c", "id"]);
        if (result.error) throw result.error;
        return result.stdout.toString();
      },
      nodeExecFile: () =>
        new Promise((resolve, reject) =>
          childProcess.execFile("/bin/true", (error) => error ? reject(error) : resolve("ran"))
        ),
      permissionQuery: async () => {
        const state = (await Deno.permissions.query({ name: "run" })).state;
        if (state !== "granted") throw new Deno.errors.NotCapable(`run is ${state}`);
        return state;
      },
    });
  },
});
