/**
 * Attack: signal its own sandbox process (SIGKILL to die, SIGUSR1 to open Deno's inspector,
 * SIGSTOP to freeze) through the Deno namespace and through `node:process`.
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import process from "node:process";
import { attempt } from "./attempts.ts";

export default definePlugin({
  name: "kill_self",
  async requestFilter(_conf, _req, res) {
    const pid = Deno.pid;
    await attempt(res, {
      denoKillUsr1: () => Deno.kill(pid, "SIGUSR1"),
      denoKillKill: () => Deno.kill(pid, "SIGKILL"),
      denoKillStop: () => Deno.kill(pid, "SIGSTOP"),
      nodeKillUsr1: () => process.kill(pid, "SIGUSR1"),
      nodeKillKill: () => process.kill(process.pid, "SIGKILL"),
      nodeKillGroup: () => process.kill(0, "SIGKILL"),
      nodeAbort: () => process.abort(),
      debugProcess: () =>
        (process as unknown as { _debugProcess(pid: number): void })._debugProcess(pid),
    });
  },
});
