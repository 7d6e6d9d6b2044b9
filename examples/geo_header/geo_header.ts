/**
 * `geo-header`: an example of a third-party plugin that needs a permission. It asks an HTTP
 * geolocation service for the client's country and sends it upstream in a header.
 *
 * Conf: `{"service": "http://127.0.0.1:8081/country", "header": "x-country",
 * "timeout_ms": 500, "cache_seconds": 60}` (only `service` is required). The service gets
 * `GET <service>?ip=<client address>` and answers the country code as plain text.
 *
 * The plugin needs network access to the service's host and port, which the operator grants in
 * the runner's configuration (see `runner.json`):
 *
 * ```json
 * { "plugins": { "geo-header": { "module": "./geo_header.ts",
 *                                "permissions": { "net": ["127.0.0.1:8081"] } } } }
 * ```
 *
 * Without the grant every lookup is denied: the call fails, and APISIX answers 503 (or lets the
 * request through, with `"failure": "open"`).
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";

/** The parsed conf; the cache is per route conf. */
export interface GeoHeaderConf {
  service: URL;
  header: string;
  timeoutMs: number;
  cacheMs: number;
  cache: Map<string, { country: string; expires: number }>;
}

const MAX_CACHED = 10_000;

function parse(raw: string): GeoHeaderConf {
  const conf = JSON.parse(raw);
  if (typeof conf !== "object" || conf === null || Array.isArray(conf)) {
    throw new TypeError("the conf: expected a JSON object");
  }
  let service: URL;
  try {
    service = new URL(conf.service);
  } catch {
    throw new TypeError(`service: expected an http(s) URL, got ${JSON.stringify(conf.service)}`);
  }
  if (service.protocol !== "http:" && service.protocol !== "https:") {
    throw new TypeError(`service: expected an http(s) URL, got ${JSON.stringify(conf.service)}`);
  }
  const header = conf.header ?? "x-country";
  if (typeof header !== "string" || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(header)) {
    throw new TypeError(`header: expected a header name, got ${JSON.stringify(header)}`);
  }
  const timeoutMs = conf.timeout_ms ?? 500;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 10_000) {
    throw new TypeError(`timeout_ms: expected an integer from 1 to 10000, got ${timeoutMs}`);
  }
  const cacheSeconds = conf.cache_seconds ?? 60;
  if (typeof cacheSeconds !== "number" || cacheSeconds < 0) {
    throw new TypeError(`cache_seconds: expected a number of 0 or more, got ${cacheSeconds}`);
  }
  return { service, header, timeoutMs, cacheMs: cacheSeconds * 1000, cache: new Map() };
}

async function lookup(conf: GeoHeaderConf, ip: string): Promise<string> {
  const cached = conf.cache.get(ip);
  if (cached && cached.expires > Date.now()) return cached.country;
  const url = new URL(conf.service);
  url.searchParams.set("ip", ip);
  const response = await fetch(url, { signal: AbortSignal.timeout(conf.timeoutMs) });
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`geo service answered ${response.status} for ${ip}`);
  }
  const country = (await response.text()).trim().slice(0, 64);
  if (conf.cacheMs > 0) {
    if (conf.cache.size >= MAX_CACHED) conf.cache.delete(conf.cache.keys().next().value!);
    conf.cache.set(ip, { country, expires: Date.now() + conf.cacheMs });
  }
  return country;
}

export default definePlugin<GeoHeaderConf>({
  name: "geo-header",
  parseConf: parse,
  async requestFilter(conf, req) {
    req.headers.set(conf.header, await lookup(conf, req.srcIp));
  },
});
