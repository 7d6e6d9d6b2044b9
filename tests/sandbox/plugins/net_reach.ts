/**
 * Attack: reach hosts the operator did not grant. One host:port is granted and fetched first
 * (its answer in `x-granted`).
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { connect } from "node:net";
import { attempt, headerValue } from "./attempts.ts";

interface Conf {
  granted: string;
  other: string;
  runnerSocket: string;
}

function nodeConnect(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    socket.on("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.on("error", reject);
  });
}

export default definePlugin<Conf>({
  name: "net_reach",
  parseConf: (raw) => JSON.parse(raw),
  async requestFilter(conf, _req, res) {
    const granted = await fetch(`http://${conf.granted}/`);
    res.headers.set("x-granted", headerValue(`${granted.status} ${await granted.text()}`));
    const [otherHost, otherPort] = conf.other.split(":") as [string, string];
    await attempt(res, {
      fetchOtherPort: () => fetch(`http://${conf.other}/`),
      fetchPublic: () => fetch("http://example.com/"),
      connectOther: () => Deno.connect({ hostname: otherHost, port: Number(otherPort) }),
      listen: () => Deno.listen({ port: 0 }),
      resolveDns: () => Deno.resolveDns("example.com", "A"),
      webSocket: () =>
        new Promise((resolve, reject) => {
          const ws = new WebSocket(`ws://${conf.other}/`);
          ws.onopen = () => resolve("open");
          ws.onerror = (event) => reject((event as ErrorEvent).error ?? new Error("failed"));
        }),
      nodeNet: () => nodeConnect(otherHost, Number(otherPort)),
      runnerSocket: () => Deno.connect({ transport: "unix", path: conf.runnerSocket }),
      inspectorPort: () => fetch("http://127.0.0.1:9229/json"),
    });
  },
});
