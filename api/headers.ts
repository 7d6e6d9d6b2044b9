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
  // Null until first read when made by `fromTrustedLazily`.
  #values: Map<string, string[]> | null = new Map();
  #load: (() => Iterable<readonly [string, string]>) | null = null;
  // What `set` and `restore` did before the headers were read, applied over them when they are
  // (an empty list deletes).
  #early: Map<string, string[]> | null = null;
  #changed: Set<string> | null = null;

  /** Creates headers from `[name, value]` pairs (repeated names keep every value). */
  constructor(init?: Iterable<readonly [string, string]>) {
    if (init) { for (const [name, value] of init) this.append(name, value); }
  }

  /** Adds a value as it came from the wire, without validation or change tracking. */
  static fromTrusted(entries: Iterable<readonly [string, string]>): HeaderStore {
    const headers = new HeaderStore();
    headers.#values = valuesOf(entries);
    return headers;
  }

  /**
   * {@linkcode fromTrusted} of what `load` returns, called only when something reads the
   * headers: a plugin that only sets names (response-rewrite adding a header) never decodes
   * the dozen the request or the upstream came with.
   */
  static fromTrustedLazily(load: () => Iterable<readonly [string, string]>): HeaderStore {
    const headers = new HeaderStore();
    headers.#values = null;
    headers.#load = load;
    return headers;
  }

  #map(): Map<string, string[]> {
    if (this.#values) return this.#values;
    const values = valuesOf(this.#load!());
    for (const [name, list] of this.#early ?? []) {
      if (list.length) values.set(name, list);
      else values.delete(name);
    }
    this.#load = null;
    this.#early = null;
    return this.#values = values;
  }

  /** Replaces the values of `name` without marking it changed (for chained views). */
  restore(name: string, values: string[]): void {
    if (!this.#values) (this.#early ??= new Map()).set(name, values);
    else if (values.length) this.#values.set(name, values);
    else this.#values.delete(name);
  }

  #change(key: string): void {
    (this.#changed ??= new Set()).add(key);
  }

  /** The values of `name` joined with `", "`, or `null` when it is absent. */
  get(name: string): string | null {
    const list = this.#map().get(name.toLowerCase());
    return list ? list.join(", ") : null;
  }

  /** Every value of `name`, in order (an empty array when absent). */
  getAll(name: string): string[] {
    return [...this.#map().get(name.toLowerCase()) ?? []];
  }

  /** Every `set-cookie` value, unjoined. */
  getSetCookie(): string[] {
    return this.getAll("set-cookie");
  }

  /** Whether `name` is present. */
  has(name: string): boolean {
    return this.#map().has(name.toLowerCase());
  }

  /** Replaces every value of `name` with `value`. */
  set(name: string, value: string): void {
    const key = normalizeName(name);
    const list = [normalizeValue(key, value)];
    if (this.#values) this.#values.set(key, list);
    // Replacing needs nothing of what was there: the headers stay unread.
    else (this.#early ??= new Map()).set(key, list);
    this.#change(key);
  }

  /** Adds `value` after the existing values of `name`. */
  append(name: string, value: string): void {
    const key = normalizeName(name);
    const normalized = normalizeValue(key, value);
    const values = this.#map();
    const list = values.get(key);
    if (list) list.push(normalized);
    else values.set(key, [normalized]);
    this.#change(key);
  }

  /** Removes `name` and all its values. */
  delete(name: string): void {
    const key = name.toLowerCase();
    if (!this.#map().delete(key)) return;
    this.#change(key);
  }

  /** Number of distinct names. */
  get size(): number {
    return this.#map().size;
  }

  /** `[name, value]` pairs sorted by name; values joined except for `set-cookie`. */
  *entries(): IterableIterator<[string, string]> {
    const values = this.#map();
    for (const key of [...values.keys()].sort()) {
      const list = values.get(key)!;
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
    return `Headers ${inspect(Object.fromEntries(this.#map()), options)}`;
  }

  /** The same for `node:util` (used by `node:assert`). */
  [Symbol.for("nodejs.util.inspect.custom")](
    _depth: number,
    options: unknown,
    inspect: (value: unknown, options?: unknown) => string,
  ): string {
    return `Headers ${inspect(Object.fromEntries(this.#map()), options)}`;
  }

  /** Names changed since creation, or `null`. */
  get changed(): ReadonlySet<string> | null {
    return this.#changed;
  }

  /** The current values of `name` without copying. */
  valuesOf(name: string): readonly string[] {
    // A changed name of headers not read yet was set: its values are all it has.
    if (!this.#values) {
      const early = this.#early?.get(name);
      if (early) return early;
    }
    return this.#map().get(name) ?? [];
  }

  /** Every `[name, value]` pair, one per value, names grouped in insertion order. */
  *pairs(): IterableIterator<[string, string]> {
    for (const [key, list] of this.#map()) for (const value of list) yield [key, value];
  }
}

function valuesOf(entries: Iterable<readonly [string, string]>): Map<string, string[]> {
  const values = new Map<string, string[]>();
  for (const [name, value] of entries) {
    const key = name.toLowerCase();
    const list = values.get(key);
    if (list) list.push(value);
    else values.set(key, [value]);
  }
  return values;
}
