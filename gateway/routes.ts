/**
 * The local gateway's routes file: JSON (comments and trailing commas allowed), shaped like
 * APISIX routes so that what works here can be pasted into APISIX's Admin API:
 *
 * ```jsonc
 * {
 *   "routes": [
 *     {
 *       "id": "hello",                      // optional; default: its position, from 1
 *       "uri": "/hello",                    // exact; "/api/*" matches a prefix
 *       "methods": ["GET", "POST"],         // optional; default: any
 *       "upstream": "http://127.0.0.1:8080", // or "echo" (built in); optional
 *       "plugins": {
 *         "ext-plugin-pre-req": {
 *           "conf": [{ "name": "say", "value": "{\"body\":\"hi\"}" }],
 *           "allow_degradation": false
 *         },
 *         "ext-plugin-post-req": { "conf": [] },
 *         "ext-plugin-post-resp": { "conf": [] }
 *       }
 *     }
 *   ]
 * }
 * ```
 *
 * A conf `value` may also be any JSON value; the gateway sends it as a JSON string (APISIX
 * itself takes strings only).
 *
 * @module
 */
import { parseJsonc } from "../runner/config/jsonc.ts";

/** The three ext-plugins, in the order APISIX runs them. */
export const PHASES = [
  "ext-plugin-pre-req",
  "ext-plugin-post-req",
  "ext-plugin-post-resp",
] as const;

/** One of {@linkcode PHASES}. */
export type Phase = typeof PHASES[number];

/** One ext-plugin of a route. */
export interface PhaseConf {
  /** Plugin name → conf string, in execution order. */
  conf: Array<[string, string]>;
  /** Continue as if the plugin were absent when the runner fails (APISIX ≥ 2.12). */
  allowDegradation: boolean;
}

/** One route. */
export interface Route {
  id: string;
  uri: string;
  /** Whether `uri` ended in `*`: a prefix match on what precedes it. */
  prefix: boolean;
  methods: string[] | null;
  /** An http(s) URL, "echo", or null (requests that get that far answer 502). */
  upstream: string | null;
  plugins: Partial<Record<Phase, PhaseConf>>;
  /** Changes whenever the route's definition does: PrepareConf keys carry it. */
  version: number;
}

/** Thrown for a mistake in the routes file; the message names the file, key and expectation. */
export class RoutesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RoutesError";
  }
}

type Json = Record<string, unknown>;

/** FNV-1a, for a route's version. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Validates a parsed routes file. */
export function parseRoutes(value: unknown, file: string): Route[] {
  const fail = (key: string, expected: string, got?: unknown): never => {
    const shown = got === undefined ? "" : `, got ${JSON.stringify(got)}`;
    throw new RoutesError(`${file}: ${key}: expected ${expected}${shown}`);
  };
  const object = (v: unknown, key: string, allowed: readonly string[]): Json => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) fail(key, "an object", v);
    for (const name of Object.keys(v as Json)) {
      if (!allowed.includes(name)) fail(`${key}.${name}`, `one of the keys ${allowed.join(", ")}`);
    }
    return v as Json;
  };
  const root = object(value, "(top level)", ["routes"]);
  if (!Array.isArray(root.routes)) fail("routes", "a list of routes", root.routes);
  const routes: Route[] = [];
  const ids = new Set<string>();
  (root.routes as unknown[]).forEach((raw, index) => {
    const key = `routes[${index}]`;
    const entry = object(raw, key, ["id", "uri", "methods", "upstream", "plugins"]);
    const id = entry.id === undefined ? String(index + 1) : entry.id;
    if (typeof id !== "string" && typeof id !== "number") {
      fail(`${key}.id`, "a string or a number", id);
    }
    if (ids.has(String(id))) fail(`${key}.id`, "an id no other route has", id);
    ids.add(String(id));
    if (typeof entry.uri !== "string" || !entry.uri.startsWith("/")) {
      fail(`${key}.uri`, 'a path starting with "/" ("/api/*" for a prefix)', entry.uri);
    }
    const uri = entry.uri as string;
    let methods: string[] | null = null;
    if (entry.methods !== undefined) {
      if (
        !Array.isArray(entry.methods) ||
        entry.methods.some((m) => typeof m !== "string" || !/^[A-Z]+$/.test(m))
      ) {
        fail(`${key}.methods`, 'a list of upper-case methods, e.g. ["GET", "POST"]', entry.methods);
      }
      methods = entry.methods as string[];
    }
    let upstream: string | null = null;
    if (entry.upstream !== undefined) {
      if (typeof entry.upstream !== "string") {
        fail(`${key}.upstream`, 'an http(s) URL or "echo"', entry.upstream);
      }
      upstream = entry.upstream as string;
      if (upstream !== "echo") {
        let url: URL | null = null;
        try {
          url = new URL(upstream);
        } catch {
          // reported below
        }
        if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
          fail(`${key}.upstream`, 'an http(s) URL or "echo"', entry.upstream);
        }
      }
    }
    const plugins: Partial<Record<Phase, PhaseConf>> = {};
    if (entry.plugins !== undefined) {
      const all = object(entry.plugins, `${key}.plugins`, PHASES);
      for (const phase of PHASES) {
        if (all[phase] === undefined) continue;
        const pkey = `${key}.plugins.${phase}`;
        const p = object(all[phase], pkey, ["conf", "allow_degradation"]);
        const conf: Array<[string, string]> = [];
        if (p.conf !== undefined) {
          if (!Array.isArray(p.conf)) fail(`${pkey}.conf`, "a list of {name, value}", p.conf);
          (p.conf as unknown[]).forEach((item, i) => {
            const ikey = `${pkey}.conf[${i}]`;
            const e = object(item, ikey, ["name", "value"]);
            if (typeof e.name !== "string" || e.name.length < 1 || e.name.length > 128) {
              fail(`${ikey}.name`, "a plugin name of 1-128 characters", e.name);
            }
            if (e.value === undefined) {
              fail(`${ikey}.value`, "the plugin's conf (a string or JSON)");
            }
            conf.push([
              e.name as string,
              typeof e.value === "string" ? e.value : JSON.stringify(e.value),
            ]);
          });
        }
        if (p.allow_degradation !== undefined && typeof p.allow_degradation !== "boolean") {
          fail(`${pkey}.allow_degradation`, "true or false", p.allow_degradation);
        }
        plugins[phase] = { conf, allowDegradation: p.allow_degradation === true };
      }
    }
    const prefix = uri.endsWith("*");
    routes.push({
      id: String(id),
      uri: prefix ? uri.slice(0, -1) : uri,
      prefix,
      methods,
      upstream,
      plugins,
      version: hash(JSON.stringify(raw)),
    });
  });
  return routes;
}

/** Reads and validates a routes file. */
export async function loadRoutes(file: string): Promise<Route[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    throw new RoutesError(`${file}: cannot read the routes: ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = parseJsonc(text);
  } catch (error) {
    throw new RoutesError(`${file}: not valid JSON: ${(error as Error).message}`);
  }
  return parseRoutes(value, file);
}

/** The route for a request: an exact match first, else the longest matching prefix. */
export function matchRoute(routes: readonly Route[], path: string, method: string): Route | null {
  let best: Route | null = null;
  for (const route of routes) {
    if (route.methods && !route.methods.includes(method)) continue;
    if (!route.prefix) {
      if (route.uri === path) return route;
      continue;
    }
    if (path.startsWith(route.uri) && (!best || route.uri.length > best.uri.length)) best = route;
  }
  return best;
}
