/**
 * Shared by the fault plugins: they answer "alive" unless the request carries `x-go`, so the
 * suite can see a plugin serve again after its sandbox was killed and restarted.
 *
 * @module
 */
import type { PluginRequest, PluginResponse } from "@apisix/deno-plugin-runner";

/** True when the request asks for the fault; otherwise answers "alive" and returns false. */
export function armed(req: PluginRequest, res: PluginResponse): boolean {
  if (req.headers.has("x-go")) return true;
  res.body = "alive";
  return false;
}
