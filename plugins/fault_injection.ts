/**
 * `fault-injection`: answers a share of requests with an error, and can delay them first (the
 * Go runner's plugin of the same name and conf, plus `delay`).
 *
 * Conf: `{"http_status": 503, "body": "injected", "percentage": 50, "delay": 0.2}`.
 *
 * - `http_status`: the status to answer with (200 to 599). Required unless `delay` is given;
 *   with `delay` alone, hit requests are only delayed, then proxied.
 * - `body` (default none): the body to answer with.
 * - `percentage` (default 100): the share of requests hit, 0 to 100.
 * - `delay` (default none): seconds a hit request waits before it is answered or proxied,
 *   above 0 and at most 55 (keep it below the plugin's call timeout, 10 s by default).
 *
 * @module
 */
import { definePlugin, type Plugin } from "../mod.ts";
import { fail, Fields } from "./conf_reader.ts";

/** Where the plugin gets randomness and waits, so tests can control both. */
export interface Chance {
  /** A number in [0, 1), as `Math.random`. */
  random(): number;
  /** Resolves after `ms` milliseconds. */
  sleep(ms: number): Promise<void>;
}

/** The real randomness and timer. */
export const systemChance: Chance = {
  random: Math.random,
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** The parsed conf. */
export interface FaultInjectionConf {
  httpStatus: number | null;
  body: string | null;
  percentage: number;
  delayMs: number;
}

function parse(raw: string): FaultInjectionConf {
  const conf = Fields.parse(raw, ["http_status", "body", "percentage", "delay"]);
  const delayMs = conf.has("delay") ? conf.number("delay", 0, 55) * 1000 : 0;
  if (!conf.has("http_status") && delayMs === 0) {
    fail("http_status", "a status from 200 to 599 (or a delay)");
  }
  return {
    httpStatus: conf.has("http_status") ? conf.integer("http_status", 200, 599) : null,
    body: conf.optionalString("body") ?? null,
    percentage: conf.integer("percentage", 0, 100, 100),
    delayMs,
  };
}

/**
 * Creates the plugin with its own randomness and timer. The bundled plugin is
 * `createFaultInjection()`; tests pass fakes.
 *
 * @example
 * ```ts
 * import { createFaultInjection } from "./fault_injection.ts";
 *
 * const always = createFaultInjection({ random: () => 0, sleep: () => Promise.resolve() });
 * ```
 */
export function createFaultInjection(chance: Chance = systemChance): Plugin<FaultInjectionConf> {
  return definePlugin<FaultInjectionConf>({
    name: "fault-injection",
    parseConf: parse,
    async requestFilter(conf, _req, res) {
      if (chance.random() * 100 >= conf.percentage) return;
      if (conf.delayMs > 0) await chance.sleep(conf.delayMs);
      if (conf.httpStatus === null) return;
      res.status = conf.httpStatus;
      if (conf.body) res.body = conf.body;
    },
  });
}

export default createFaultInjection();
