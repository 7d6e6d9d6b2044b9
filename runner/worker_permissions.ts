/**
 * The Deno permissions of a plugin's worker: exactly what the operator granted, plus reading
 * the plugin's own package, or module, directory (a dynamic import is checked against the worker's own
 * permissions). `run` and `ffi` are never granted.
 *
 * @module
 */
import { ownDirectory, type PluginSettings } from "./config.ts";

/** The permissions object to pass as `deno.permissions` when creating the plugin's worker. */
export function workerPermissions(settings: PluginSettings): Deno.PermissionOptionsObject {
  const { permissions } = settings;
  const own = ownDirectory(settings);
  const read = own ? [own, ...permissions.read] : permissions.read;
  const allow = (list: string[]) => list.length ? list : false;
  return {
    read: allow(read),
    write: allow(permissions.write),
    net: allow(permissions.net),
    env: allow(permissions.env),
    sys: allow(permissions.sys) as NonNullable<Deno.PermissionOptionsObject["sys"]>,
    import: allow(permissions.import),
    run: false,
    ffi: false,
  };
}
