/**
 * `limit-req`: limits the request rate of a route with a leaky bucket (the Go runner's plugin of
 * the same name and conf, with the semantics of nginx's and APISIX's limit-req).
 *
 * Conf: `{"rate": 5, "burst": 10}` and optionally `"key": "remote_addr"`,
 * `"rejected_code": 503`, `"rejected_msg": "slow down"`, `"nodelay": false`.
 *
 * - `rate` (required): requests per second that pass without waiting.
 * - `burst` (default 0): requests above the rate that are delayed (each waits until its turn at
 *   `rate`, in whole milliseconds as nginx counts: less than 1 ms is no wait) instead of
 *   rejected. A request beyond `burst` is answered with `rejected_code`
 *   (default 503, as the Go runner) and `rejected_msg` (default no body).
 * - `nodelay`: pass the burst at once instead of spacing it out.
 * - `key`: keep a bucket per value of an APISIX variable (`"remote_addr"`,
 *   `"http_x_api_key"`, `"consumer_name"`), or of a combination written with `$`
 *   (`"$remote_addr $http_user_agent"`). Without a key the route has one bucket. A request whose
 *   key variable is unset is counted under its client address, as APISIX does.
 *
 * The buckets live in the parsed conf, so each route has its own (every PrepareConf gets its own
 * parse, even of byte-identical conf strings). At most 100,000 keys
 * are tracked per conf; beyond that the least recently seen key is forgotten. Keep
 * `burst / rate` below the plugin's call timeout (10 s by default), since a delayed request
 * waits inside its call.
 *
 * @module
 */
import { definePlugin, type Plugin } from "../mod.ts";
import { fail, Fields } from "./conf_reader.ts";
import { fetchVars, MAX_PREFETCH_VARS, VarTemplate } from "./var_template.ts";

/** Where the plugin gets the time, so tests can run it on a fake clock. */
export interface Clock {
  /** Milliseconds from any fixed origin, never going backwards. */
  now(): number;
  /** Resolves after `ms` milliseconds. */
  sleep(ms: number): Promise<void>;
}

/** The real clock. */
export const systemClock: Clock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

const MAX_KEYS = 100_000;

interface Bucket {
  /** Requests waiting to drain (nginx's "excess"). */
  excess: number;
  /** When `excess` was last updated. */
  at: number;
}

/** The leaky buckets of one conf. */
export class Buckets {
  readonly #rate: number;
  readonly #burst: number;
  readonly #maxKeys: number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(rate: number, burst: number, maxKeys = MAX_KEYS) {
    this.#rate = rate;
    this.#burst = burst;
    this.#maxKeys = maxKeys;
  }

  /** Buckets tracked. */
  get size(): number {
    return this.#buckets.size;
  }

  /**
   * Counts one request for `key` at time `now` (ms). Returns `null` when it is rejected, or how
   * many milliseconds it should wait to keep to the rate.
   */
  take(key: string, now: number): number | null {
    const bucket = this.#buckets.get(key);
    if (!bucket) {
      if (this.#buckets.size >= this.#maxKeys) {
        this.#buckets.delete(this.#buckets.keys().next().value!);
      }
      this.#buckets.set(key, { excess: 0, at: now });
      return 0;
    }
    // Most recently seen last, so the first key is the one to forget. A rejected key counts as
    // seen: forgetting the busiest keys first would reset exactly the buckets that matter.
    this.#buckets.delete(key);
    this.#buckets.set(key, bucket);
    const drained = (this.#rate * Math.max(0, now - bucket.at)) / 1000;
    const excess = Math.max(bucket.excess - drained + 1, 0);
    if (excess > this.#burst) return null;
    bucket.excess = excess;
    bucket.at = now;
    return (excess / this.#rate) * 1000;
  }
}

/** The parsed conf. */
export interface LimitReqConf {
  key: VarTemplate | null;
  rejectedCode: number;
  rejectedMsg: string | null;
  nodelay: boolean;
  buckets: Buckets;
}

function parse(raw: string): LimitReqConf {
  const conf = Fields.parse(raw, [
    "rate",
    "burst",
    "key",
    "rejected_code",
    "rejected_msg",
    "nodelay",
  ]);
  const rate = conf.number("rate", 0, 1_000_000);
  const burst = conf.has("burst") ? conf.number("burst", -1, 1_000_000) : 0;
  if (burst < 0) fail("burst", "a number of 0 or more", burst);
  const keyText = conf.optionalString("key", { nonEmpty: true });
  let key: VarTemplate | null = null;
  if (keyText !== undefined) {
    key = VarTemplate.parse("key", keyText.includes("$") ? keyText : `\${${keyText}}`);
    if (key.constant) fail("key", 'a variable name or a combination such as "$a $b"', keyText);
  }
  return {
    key,
    rejectedCode: conf.integer("rejected_code", 200, 599, 503),
    rejectedMsg: conf.optionalString("rejected_msg") ?? null,
    nodelay: conf.boolean("nodelay", false),
    buckets: new Buckets(rate, burst),
  };
}

/**
 * Creates the plugin with its own clock. The bundled plugin is `createLimitReq()`; tests pass a
 * fake clock to control time.
 *
 * @example
 * ```ts
 * import { createLimitReq, type Clock } from "./limit_req.ts";
 *
 * let now = 0;
 * const clock: Clock = { now: () => now, sleep: async (ms) => { now += ms; } };
 * const plugin = createLimitReq(clock);
 * ```
 */
export function createLimitReq(clock: Clock = systemClock): Plugin<LimitReqConf> {
  return definePlugin<LimitReqConf>({
    name: "limit-req",
    parseConf: parse,
    // Every call reads the key's variables: the runner asks APISIX before the call.
    prefetch: (conf) => conf.key ? { vars: conf.key.vars.slice(0, MAX_PREFETCH_VARS) } : undefined,
    async requestFilter(conf, req, res) {
      let key = "";
      if (conf.key) {
        const values = await fetchVars(conf.key.vars, (name) => req.var(name));
        const allUnset = [...values.values()].every((v) => v === null);
        key = allUnset ? req.srcIp : conf.key.render(values);
      }
      const wait = conf.buckets.take(key, clock.now());
      if (wait === null) {
        res.status = conf.rejectedCode;
        if (conf.rejectedMsg !== null) res.body = conf.rejectedMsg;
        return;
      }
      // Whole milliseconds, as nginx counts: a wait under 1 ms is none. A timer cannot wait less
      // than a turn of the event loop, and under load a turn is longer than a fraction of a ms.
      const ms = Math.floor(wait);
      if (ms > 0 && !conf.nodelay) await clock.sleep(ms);
    },
  });
}

export default createLimitReq();
