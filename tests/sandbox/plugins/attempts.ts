/**
 * What every attack plugin of the escape suite reports: it tries each route to one capability
 * and answers the request itself. Status 403 with `x-attack: denied` when every route failed;
 * status 200 with `x-attack: escaped …` naming the routes that worked. `x-denied` lists
 * `route:ErrorName` for the routes that failed, `x-detail` their messages (for assertions that
 * nothing leaked through an error message).
 *
 * @module
 */
import type { PluginResponse } from "@apisix/deno-plugin-runner";

/** One way to reach a capability; it throws when the sandbox refuses. */
export type Route = () => unknown;

/** A header value: printable ASCII only, at most 2000 characters. */
export function headerValue(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, "?").slice(0, 2000);
}

/** Tries every route in order and answers with the result (see the module doc). */
export async function attempt(res: PluginResponse, routes: Record<string, Route>): Promise<void> {
  const denied: string[] = [];
  const details: string[] = [];
  const escaped: string[] = [];
  for (const [name, route] of Object.entries(routes)) {
    try {
      const value = await route();
      escaped.push(`${name}=${String(value).slice(0, 100)}`);
    } catch (error) {
      const e = error as Error;
      denied.push(`${name}:${e?.name ?? typeof error}`);
      details.push(`${name}: ${String(e?.message ?? error).split("\n")[0]}`);
    }
  }
  res.headers.set(
    "x-attack",
    headerValue(escaped.length ? `escaped ${escaped.join("; ")}` : "denied"),
  );
  res.headers.set("x-denied", headerValue(denied.join(", ")));
  res.headers.set("x-detail", headerValue(details.join(" | ")));
  res.status = escaped.length ? 200 : 403;
}

/** A route that fails unless `value` is usable (not undefined or null). */
export function present(what: string, value: unknown): unknown {
  if (value === undefined || value === null) throw new ReferenceError(`${what} is gone`);
  return typeof value === "function" ? `${what} is a function` : value;
}
