/**
 * The implementation of {@linkcode HeaderMap}: a multi-value header map with the semantics of
 * the Fetch standard's `Headers`, plus the change tracking the runner needs.
 *
 * @module
 */
import { IGNORED_RESPONSE_HEADERS } from "../protocol/apisix_rules.ts";
import type { HeaderMap } from "./types.ts";

/**
 * Whether APISIX ignores a response header that a request-phase plugin adds to a proxied
 * response (`res.headers` without `status` or `body`): Content-Type, Content-Length, Location
 * and the other headers its proxy sets itself. The runner drops such a header with a warning;
 * a plugin can refuse a conf that asks for one instead. `name` is compared case-insensitively.
 *
 * @example Refusing a conf that names a header APISIX would ignore
 * ```ts
 * import { definePlugin, isIgnoredResponseHeader } from "@apisix/deno-plugin-runner";
 *
 * export default definePlugin<{ header: string }>({
 *   name: "tag-response",
 *   parseConf(raw) {
 *     const conf = JSON.parse(raw);
 *     if (isIgnoredResponseHeader(conf.header)) {
 *       throw new TypeError(`APISIX ignores ${conf.header} on a proxied response`);
 *     }
 *     return conf;
 *   },
 *   requestFilter(conf, _req, res) {
 *     res.headers.set(conf.header, "tagged");
 *   },
 * });
 * ```
 */
export function isIgnoredResponseHeader(name: string): boolean {
  return IGNORED_RESPONSE_HEADERS.has(name.toLowerCase());
}

// RFC 9110 token characters.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Byte strings without NUL, CR or LF (Fetch's header value rules).
const BAD_VALUE = /[\0\r\n\u0100-\uffff]/;
const EDGE_WHITESPACE = /^[\t\n\r ]+|[\t\n\r ]+$/g;

function normalizeName(name: string): string {
  if (!TOKEN.test(name)) throw new TypeError(`Invalid header name: ${JSON.stringify(name)}`);
  return name.toLowerCase();
}

function normalizeValue(name: string, value: string): string {
  const trimmed = String(value).replace(EDGE_WHITESPACE, "");
  if (BAD_VALUE.test(trimmed)) {
    throw new TypeError(
      `Invalid value for header ${name}: it must be a byte string without NUL, CR or LF`,
    );
  }
  return trimmed;
}

/** Headers that remember which names were changed (see {@linkcode HeaderMap}). */
export class HeaderStore implements HeaderMap {
  #values = new Map<string, string[]>();
  #changed: Set<string> | null = null;

  /** Creates headers from `[name, value]` pairs (repeated names keep every value). */
  constructor(init?: Iterable<readonly [string, string]>) {
    if (init) { for (const [name, value] of init) this.append(name, value); }
  }

  /** Adds a value as it came from the wire, without validation or change tracking. */
  static fromTrusted(entries: Iterable<readonly [string, string]>): HeaderStore {
    const headers = new HeaderStore();
    const values = headers.#values;
    for (const [name, value] of entries) {
      const key = name.toLowerCase();
      const list = values.get(key);
      if (list) list.push(value);
      else values.set(key, [value]);
    }
    return headers;
  }

  /** Replaces the values of `name` without marking it changed (for chained views). */
  restore(name: string, values: string[]): void {
    if (values.length) this.#values.set(name, values);
    else this.#values.delete(name);
  }

  #change(key: string): void {
    (this.#changed ??= new Set()).add(key);
  }

  /** The values of `name` joined with `", "`, or `null` when it is absent. */
  get(name: string): string | null {
    const list = this.#values.get(name.toLowerCase());
    return list ? list.join(", ") : null;
  }

  /** Every value of `name`, in order (an empty array when absent). */
  getAll(name: string): string[] {
    return [...this.#values.get(name.toLowerCase()) ?? []];
  }

  /** Every `set-cookie` value, unjoined. */
  getSetCookie(): string[] {
    return this.getAll("set-cookie");
  }

  /** Whether `name` is present. */
  has(name: string): boolean {
    return this.#values.has(name.toLowerCase());
  }

  /** Replaces every value of `name` with `value`. */
  set(name: string, value: string): void {
    const key = normalizeName(name);
    this.#values.set(key, [normalizeValue(key, value)]);
    this.#change(key);
  }

  /** Adds `value` after the existing values of `name`. */
  append(name: string, value: string): void {
    const key = normalizeName(name);
    const normalized = normalizeValue(key, value);
    const list = this.#values.get(key);
    if (list) list.push(normalized);
    else this.#values.set(key, [normalized]);
    this.#change(key);
  }

  /** Removes `name` and all its values. */
  delete(name: string): void {
    const key = name.toLowerCase();
    if (!this.#values.delete(key)) return;
    this.#change(key);
  }

  /** Number of distinct names. */
  get size(): number {
    return this.#values.size;
  }

  /** `[name, value]` pairs sorted by name; values joined except for `set-cookie`. */
  *entries(): IterableIterator<[string, string]> {
    for (const key of [...this.#values.keys()].sort()) {
      const list = this.#values.get(key)!;
      if (key === "set-cookie") { for (const value of list) yield [key, value]; }
      else yield [key, list.join(", ")];
    }
  }

  /** The names, as `entries()` yields them. */
  *keys(): IterableIterator<string> {
    for (const [key] of this.entries()) yield key;
  }

  /** The values, as `entries()` yields them. */
  *values(): IterableIterator<string> {
    for (const [, value] of this.entries()) yield value;
  }

  /** Calls `callback` for each of `entries()`. */
  forEach(callback: (value: string, name: string, headers: HeaderMap) => void): void {
    for (const [name, value] of this.entries()) callback(value, name, this);
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  /** How `console.log` and assertion messages show headers (else as an empty object). */
  [Symbol.for("Deno.customInspect")](
    inspect: (value: unknown, options?: unknown) => string,
    options: unknown,
  ): string {
    return `Headers ${inspect(Object.fromEntries(this.#values), options)}`;
  }

  /** The same for `node:util` (used by `node:assert`). */
  [Symbol.for("nodejs.util.inspect.custom")](
    _depth: number,
    options: unknown,
    inspect: (value: unknown, options?: unknown) => string,
  ): string {
    return `Headers ${inspect(Object.fromEntries(this.#values), options)}`;
  }

  /** Names changed since creation, or `null`. */
  get changed(): ReadonlySet<string> | null {
    return this.#changed;
  }

  /** The current values of `name` without copying. */
  valuesOf(name: string): readonly string[] {
    return this.#values.get(name) ?? [];
  }

  /** Every `[name, value]` pair, one per value, names grouped in insertion order. */
  *pairs(): IterableIterator<[string, string]> {
    for (const [key, list] of this.#values) for (const value of list) yield [key, value];
  }
}
