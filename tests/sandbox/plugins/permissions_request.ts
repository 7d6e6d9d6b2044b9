/**
 * Attack: ask for more permissions at run time.
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { attempt } from "./attempts.ts";

async function granted(descriptor: Deno.PermissionDescriptor): Promise<string> {
  const state = (await Deno.permissions.query(descriptor)).state;
  if (state !== "granted") throw new Deno.errors.NotCapable(`${descriptor.name} is ${state}`);
  return state;
}

export default definePlugin({
  name: "permissions_request",
  async requestFilter(_conf, _req, res) {
    const permissions = Deno.permissions as unknown as Record<string, unknown>;
    await attempt(res, {
      request: () => Deno.permissions.request({ name: "read" }).then((s) => s.state),
      requestSync: () => Deno.permissions.requestSync({ name: "run" }).state,
      requestEnv: () =>
        Deno.permissions.request({ name: "env", variable: "HOME" }).then((s) => s.state),
      replaceRequest: () => {
        permissions.request = () => Promise.resolve({ state: "granted" });
        return "replaced";
      },
      readRootAfter: () => granted({ name: "read", path: "/" }),
      writeAfter: () => granted({ name: "write" }),
    });
  },
});
