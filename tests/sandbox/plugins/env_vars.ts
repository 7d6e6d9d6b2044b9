/**
 * Attack: read environment variables. One variable is granted (reported in `x-granted`).
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { attempt, headerValue } from "./attempts.ts";

export default definePlugin<{ granted: string }>({
  name: "env_vars",
  parseConf: (raw) => JSON.parse(raw),
  async requestFilter(conf, _req, res) {
    res.headers.set("x-granted", headerValue(Deno.env.get(conf.granted) ?? "(unset)"));
    const process = (globalThis as unknown as { process: { env: Record<string, string> } })
      .process;
    await attempt(res, {
      home: () => Deno.env.get("HOME"),
      path: () => Deno.env.get("PATH"),
      secret: () => Deno.env.get("A6_SANDBOX_SECRET"),
      toObject: () => JSON.stringify(Deno.env.toObject()),
      has: () => Deno.env.has("HOME"),
      set: () => Deno.env.set("A6_INJECTED", "1"),
      nodeEnv: () => process.env.HOME,
      nodeEnvKeys: () => Object.keys(process.env).join(","),
    });
  },
});
