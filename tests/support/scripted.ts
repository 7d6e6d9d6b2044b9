/**
 * Helpers for tests that drive the scripted fixture plugins (tests/fixtures/plugins/): the
 * runner configuration that registers them, conf strings, and decoders for what they echo.
 *
 * @module
 */
import type { Op, Seen } from "../fixtures/plugins/scripted_core.ts";
import { ROOT } from "./runner.ts";

export type { Op, Recorded, Seen } from "../fixtures/plugins/scripted_core.ts";

/** The folder of the fixture plugins. */
export const FIXTURES = `${ROOT}tests/fixtures/plugins`;

/** Per-plugin settings a test may override (see runner/config/config.ts). */
export type PluginOverrides = Record<string, unknown>;

/**
 * A runner configuration with the scripted plugins: `scripted` and `scripted-b` (defaults),
 * `slow` (a short deadline, for timeouts) and `open` (fail-open). `extra` adds or overrides
 * settings per plugin.
 */
export function scriptedConfig(extra: Record<string, PluginOverrides> = {}): unknown {
  const plugins: Record<string, PluginOverrides> = {
    "scripted": { module: `${FIXTURES}/scripted.ts` },
    "scripted-b": { module: `${FIXTURES}/scripted_b.ts` },
    "slow": { module: `${FIXTURES}/slow.ts`, timeoutMs: 1500 },
    "open": { module: `${FIXTURES}/open.ts`, failure: "open", timeoutMs: 1500 },
  };
  for (const [name, settings] of Object.entries(extra)) {
    plugins[name] = { ...plugins[name], ...settings };
  }
  return { plugins };
}

/** A scripted plugin's conf string. */
export function script(req: Op[], resp: Op[] = []): string {
  return JSON.stringify({ req, resp });
}

/** Decodes the JSON an `echo` op answered with (a Stop body). */
export function seenFromBody(body: Uint8Array | null): Seen {
  if (!body) throw new Error("the reply has no body to decode");
  return JSON.parse(new TextDecoder().decode(body));
}

/** Decodes the value of a header set by `report` or a response `echo` (base64 of JSON). */
export function seenFromHeader(value: string | null | undefined): Seen {
  if (value === null || value === undefined) throw new Error("the reply lacks the echo header");
  const bytes = Uint8Array.from(atob(value), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

/** A unique route key in APISIX's format. */
export function routeKey(plugin = "ext-plugin-pre-req"): string {
  return `route#${crypto.randomUUID()}#${plugin}#1`;
}
