/**
 * The other plugin in `broadcast`'s sandbox: it listens on every channel it can open and
 * reports what it received (`x-received`); it serves normally otherwise.
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";

const received: string[] = [];
const Ctor = (globalThis as unknown as Record<string, unknown>).BroadcastChannel as
  | (new (name: string) => { onmessage: ((e: MessageEvent) => void) | null })
  | undefined;
if (Ctor) new Ctor("a6-victim").onmessage = (e) => received.push(String(e.data));

export default definePlugin({
  name: "broadcast_victim",
  requestFilter(_conf, _req, res) {
    res.headers.set("x-received", received.length ? received.join("; ") : "nothing");
    res.headers.set("x-could-listen", Ctor ? "yes" : "no");
    res.body = "victim ok";
  },
});
