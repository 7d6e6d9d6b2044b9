/**
 * A well-behaved plugin that uses Node compatibility the ordinary way: hashing, buffers, paths,
 * util, timers and a granted environment variable. The hardening must not break any of it.
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { Buffer } from "node:buffer";
import { createHash, randomUUID } from "node:crypto";
import { join } from "node:path";
import process from "node:process";
import { format } from "node:util";

export default definePlugin<{ variable: string }>({
  name: "node_user",
  parseConf: (raw) => JSON.parse(raw),
  async requestFilter(conf, req, res) {
    await new Promise((resolve) => process.nextTick(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    const digest = createHash("sha256").update(req.path).digest("hex");
    res.headers.set("x-digest", digest);
    res.headers.set("x-b64", Buffer.from("node ok").toString("base64"));
    res.headers.set("x-path", join("/a", "b", "..", "c"));
    res.headers.set("x-format", format("%s=%d", "n", 42));
    res.headers.set("x-env", process.env[conf.variable] ?? "(unset)");
    res.headers.set("x-uuid", String(randomUUID().length));
    res.body = "node user ok";
  },
});
