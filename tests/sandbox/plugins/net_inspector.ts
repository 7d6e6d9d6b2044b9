/**
 * Attack: a plugin granted all of 127.0.0.1 tries the port where SIGUSR1 opens Deno's
 * inspector (the sandbox is started with --deny-net for it). Another port stays reachable
 * (`x-granted`).
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { attempt, headerValue } from "./attempts.ts";

export default definePlugin<{ granted: string }>({
  name: "net_inspector",
  parseConf: (raw) => JSON.parse(raw),
  async requestFilter(conf, _req, res) {
    const granted = await fetch(`http://${conf.granted}/`);
    res.headers.set("x-granted", headerValue(`${granted.status} ${await granted.text()}`));
    await attempt(res, {
      fetchInspector: () => fetch("http://127.0.0.1:9229/json/list"),
      connectInspector: () => Deno.connect({ hostname: "127.0.0.1", port: 9229 }),
      localhostInspector: () => Deno.connect({ hostname: "localhost", port: 9229 }),
    });
  },
});
