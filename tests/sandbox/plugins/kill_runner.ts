/**
 * Attack: learn the runner's pid (Deno.ppid) and signal it. `x-learned` reports what the
 * plugin can see: its own pid and its parent's.
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import process from "node:process";
import { attempt } from "./attempts.ts";

export default definePlugin({
  name: "kill_runner",
  async requestFilter(_conf, _req, res) {
    const ppid = Deno.ppid;
    res.headers.set(
      "x-learned",
      `pid=${Deno.pid} ppid=${ppid} node=${process.pid}/${process.ppid}`,
    );
    await attempt(res, {
      denoKill: () => Deno.kill(ppid, "SIGKILL"),
      denoKillTerm: () => Deno.kill(ppid, "SIGTERM"),
      denoKillUsr1: () => Deno.kill(ppid, "SIGUSR1"),
      nodeKill: () => process.kill(ppid, "SIGKILL"),
      nodeKillUsr1: () => process.kill(process.ppid, "SIGUSR1"),
      procStatus: () => Deno.readTextFile(`/proc/${ppid}/status`),
    });
  },
});
