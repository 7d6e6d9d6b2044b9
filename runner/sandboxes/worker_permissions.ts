/**
 * The Deno permissions of a plugin's worker: exactly what the operator granted, plus reading
 * the plugin's own package, or module, directory (a dynamic import is checked against the worker's own
 * permissions). `run` and `ffi` are never granted.
 *
 * @module
 */
import type { PluginSettings } from "../config/config.ts";
import { type GrantPaths, grantRoots } from "./grant_check.ts";

/**
 * The permissions object to pass as `deno.permissions` when creating the plugin's worker.
 * `paths` are the read and write paths `checkGrants` (grant_check.ts) returned for the plugin (as
 * written and as real paths); without them, the configured paths as written.
 */
export function workerPermissions(
  settings: PluginSettings,
  paths: GrantPaths = asWritten(settings),
): Deno.PermissionOptionsObject {
  const { permissions } = settings;
  const allow = (list: string[]) => list.length ? list : false;
  return {
    read: allow(paths.read),
    write: allow(paths.write),
    net: allow(permissions.net),
    env: allow(permissions.env),
    sys: allow(permissions.sys) as NonNullable<Deno.PermissionOptionsObject["sys"]>,
    import: allow(permissions.import),
    run: false,
    ffi: false,
  };
}

function asWritten(settings: PluginSettings): GrantPaths {
  const roots = grantRoots(settings);
  return { read: [...roots.read], write: [...roots.write] };
}
