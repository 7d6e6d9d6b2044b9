/**
 * `hoard`: keeps 48 MiB of ArrayBuffer memory per call, outside the V8 heap limit, so only the
 * runner's resident-memory watchdog can stop it. With `{"parseMb": N}` its parseConf keeps N
 * MiB instead: a conf that brings down every sandbox that parses it.
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";

const kept: Uint8Array[] = [];

function keep(mb: number): void {
  // Filled, so that the pages are really resident.
  kept.push(new Uint8Array(mb * 1024 * 1024).fill(1));
}

export default definePlugin<{ parseMb: number }>({
  name: "hoard",
  async parseConf(raw) {
    const conf = raw.trim() ? JSON.parse(raw) : {};
    const parseMb = Number(conf.parseMb ?? 0);
    if (parseMb > 0) {
      keep(parseMb);
      // Stay busy until the watchdog acts.
      await new Promise((resolve) => setTimeout(resolve, 5000));
    }
    return { parseMb };
  },
  requestFilter(_conf, _req, res) {
    keep(48);
    res.body = `holding ${kept.length * 48} MiB`;
  },
});
