/**
 * The implementation of {@linkcode ArgMap}.
 *
 * @module
 */
import type { ArgMap } from "./types.ts";

type Value = string | null;

function encodeQueryPart(text: string): string {
  // A byte that was not UTF-8 arrives as a lone surrogate U+DC80-U+DCFF (see
  // decodeUtf8Lossless) and goes back as that byte; encodeURIComponent would throw on it.
  return text.replace(
    /[\ud800-\udbff][\udc00-\udfff]|[\ud800-\udfff]|[^\ud800-\udfff]+/g,
    (part) => {
      if (part.length > 1 || part.charCodeAt(0) < 0xd800 || part.charCodeAt(0) > 0xdfff) {
        return encodeURIComponent(part);
      }
      const unit = part.charCodeAt(0);
      return unit >= 0xdc80 && unit <= 0xdcff
        ? `%${(unit - 0xdc00).toString(16).toUpperCase()}`
        : "%EF%BF%BD";
    },
  ).replace(/%20/g, "+");
}

/** Query args that remember which names were changed (see {@linkcode ArgMap}). */
export class ArgStore implements ArgMap {
  #values = new Map<string, Value[]>();
  #changed: Set<string> | null = null;

  /** Creates args from `[name, value]` pairs; a `null` value is a value-less arg. */
  constructor(entries?: Iterable<readonly [string, Value]>) {
    if (entries) {
      for (const [name, value] of entries) {
        const list = this.#values.get(name);
        if (list) list.push(value);
        else this.#values.set(name, [value]);
      }
    }
  }

  /** Replaces the values of `name` without marking it changed (for chained views). */
  restore(name: string, values: Value[]): void {
    if (values.length) this.#values.set(name, values);
    else this.#values.delete(name);
  }

  #change(name: string): void {
    (this.#changed ??= new Set()).add(name);
  }

  get(name: string): string | null {
    const list = this.#values.get(String(name));
    return list ? list[0] ?? "" : null;
  }

  getAll(name: string): string[] {
    return (this.#values.get(String(name)) ?? []).map((value) => value ?? "");
  }

  has(name: string, value?: string): boolean {
    const list = this.#values.get(String(name));
    if (!list) return false;
    return value === undefined || list.some((v) => (v ?? "") === String(value));
  }

  set(name: string, value: string): void {
    const key = String(name);
    this.#values.set(key, [String(value)]);
    this.#change(key);
  }

  append(name: string, value: string): void {
    const key = String(name);
    const list = this.#values.get(key);
    if (list) list.push(String(value));
    else this.#values.set(key, [String(value)]);
    this.#change(key);
  }

  delete(name: string, value?: string): void {
    const key = String(name);
    const list = this.#values.get(key);
    if (!list) return;
    if (value === undefined) {
      this.#values.delete(key);
    } else {
      const kept = list.filter((v) => (v ?? "") !== String(value));
      if (kept.length === list.length) return;
      this.restore(key, kept);
    }
    this.#change(key);
  }

  get size(): number {
    let size = 0;
    for (const list of this.#values.values()) size += list.length;
    return size;
  }

  *entries(): IterableIterator<[string, string]> {
    for (const [name, list] of this.#values) for (const value of list) yield [name, value ?? ""];
  }

  *keys(): IterableIterator<string> {
    for (const [name] of this.entries()) yield name;
  }

  *values(): IterableIterator<string> {
    for (const [, value] of this.entries()) yield value;
  }

  forEach(callback: (value: string, name: string, args: ArgMap) => void): void {
    for (const [name, value] of this.entries()) callback(value, name, this);
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  /** How `console.log` and assertion messages show args (else as an empty object). */
  [Symbol.for("Deno.customInspect")](
    inspect: (value: unknown, options?: unknown) => string,
    options: unknown,
  ): string {
    return `Args ${inspect(Object.fromEntries(this.#values), options)}`;
  }

  /** The same for `node:util` (used by `node:assert`). */
  [Symbol.for("nodejs.util.inspect.custom")](
    _depth: number,
    options: unknown,
    inspect: (value: unknown, options?: unknown) => string,
  ): string {
    return `Args ${inspect(Object.fromEntries(this.#values), options)}`;
  }

  raw(): Array<[string, string | null]> {
    const out: Array<[string, string | null]> = [];
    for (const [name, list] of this.#values) for (const value of list) out.push([name, value]);
    return out;
  }

  toString(): string {
    return this.raw()
      .map(([name, value]) =>
        value === null
          ? encodeQueryPart(name)
          : `${encodeQueryPart(name)}=${encodeQueryPart(value)}`
      )
      .join("&");
  }

  /** Names changed since creation, or `null`. */
  get changed(): ReadonlySet<string> | null {
    return this.#changed;
  }

  /** The current values of `name` without copying. */
  valuesOf(name: string): readonly Value[] {
    return this.#values.get(name) ?? [];
  }
}
