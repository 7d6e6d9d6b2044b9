/**
 * Attack: open the runner's private channel again from the plugin's worker, which opened its own
 * end of it before the plugin loaded (`x-channel` names the path, as a plugin that learnt it
 * would). Every route must meet a permission error: the worker revoked the path's permissions
 * before it imported the plugin.
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { attempt } from "./attempts.ts";

export default definePlugin({
  name: "channel_reopen",
  async requestFilter(_conf, req, res) {
    const path = req.headers.get("x-channel") ?? "";
    await attempt(res, {
      connect: () => Deno.connect({ transport: "unix", path }),
      stat: () => Deno.stat(path),
      netQuery: async () => {
        const descriptor = { name: "net", host: `unix:${path}` } as Deno.NetPermissionDescriptor;
        const { state } = await Deno.permissions.query(descriptor);
        if (state !== "granted") throw new Deno.errors.NotCapable(`net ${state}`);
      },
    });
  },
});
