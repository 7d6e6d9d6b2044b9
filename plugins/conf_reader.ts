/**
 * Conf validation shared by the bundled plugins: every mistake becomes a `ConfError` whose
 * message names the field and what it expects, e.g.
 * `status: expected an integer from 100 to 599, got "200"`. The runner logs that message with
 * the plugin's name and the route key, and leaves the plugin out of the route.
 *
 * @module
 */

/** A conf that does not validate. The message names the field and what it expects. */
export class ConfError extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = "ConfError";
  }
}

function show(value: unknown): string {
  if (value === undefined) return "nothing";
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Throws a {@linkcode ConfError} for `field`. */
export function fail(field: string, expected: string, got?: unknown): never {
  const shown = arguments.length > 2 ? `, got ${show(got)}` : "";
  throw new ConfError(`${field}: expected ${expected}${shown}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The fields of one JSON object in a conf, read with checks. */
export class Fields {
  readonly #value: Record<string, unknown>;
  readonly #path: string;

  constructor(value: Record<string, unknown>, path = "") {
    this.#value = value;
    this.#path = path;
  }

  /**
   * Parses a conf string that must be a JSON object with only the `allowed` fields; an empty
   * conf string counts as `{}`.
   */
  static parse(raw: string, allowed: readonly string[]): Fields {
    let value: unknown = {};
    if (raw.trim() !== "") {
      try {
        value = JSON.parse(raw);
      } catch (error) {
        throw new ConfError(`the conf is not valid JSON: ${(error as Error).message}`);
      }
    }
    if (!isObject(value)) fail("the conf", "a JSON object", value);
    const fields = new Fields(value);
    fields.only(allowed);
    return fields;
  }

  /** The dotted path of `key`, for messages. */
  at(key: string): string {
    return this.#path ? `${this.#path}.${key}` : key;
  }

  /** Whether `key` is present (and not `null`, which counts as absent as in Go's JSON). */
  has(key: string): boolean {
    return this.#value[key] !== undefined && this.#value[key] !== null;
  }

  /** The raw value of `key`. */
  get(key: string): unknown {
    return this.has(key) ? this.#value[key] : undefined;
  }

  /** The keys present. */
  keys(): string[] {
    return Object.keys(this.#value).filter((key) => this.has(key));
  }

  /** Rejects keys outside `allowed`, which catches typos such as `"stauts"`. */
  only(allowed: readonly string[]): void {
    for (const key of Object.keys(this.#value)) {
      if (!allowed.includes(key)) {
        throw new ConfError(
          `${this.at(key)}: unknown field (expected ${
            allowed.length ? allowed.join(", ") : "no fields"
          })`,
        );
      }
    }
  }

  /** A required string; `nonEmpty` also refuses `""`. */
  string(key: string, options: { nonEmpty?: boolean } = {}): string {
    const value = this.#value[key];
    if (typeof value !== "string" || (options.nonEmpty && value === "")) {
      fail(this.at(key), options.nonEmpty ? "a non-empty string" : "a string", value);
    }
    return value;
  }

  /** An optional string. */
  optionalString(key: string, options: { nonEmpty?: boolean } = {}): string | undefined {
    return this.has(key) ? this.string(key, options) : undefined;
  }

  /** An integer from `min` to `max`; `fallback` when absent (required when there is none). */
  integer(key: string, min: number, max: number, fallback?: number): number {
    if (!this.has(key) && fallback !== undefined) return fallback;
    const value = this.#value[key];
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      fail(this.at(key), `an integer from ${min} to ${max}`, value);
    }
    return value;
  }

  /**
   * A finite number above `above` (exclusive) and at most `max`; `fallback` when absent
   * (required when there is none).
   */
  number(key: string, above: number, max: number, fallback?: number): number {
    if (!this.has(key) && fallback !== undefined) return fallback;
    const value = this.#value[key];
    if (typeof value !== "number" || !Number.isFinite(value) || value <= above || value > max) {
      fail(this.at(key), `a number above ${above} and at most ${max}`, value);
    }
    return value;
  }

  /** A boolean; `fallback` when absent. */
  boolean(key: string, fallback: boolean): boolean {
    if (!this.has(key)) return fallback;
    const value = this.#value[key];
    if (typeof value !== "boolean") fail(this.at(key), "true or false", value);
    return value;
  }

  /** A nested object with only the `allowed` fields (any fields when `allowed` is omitted). */
  object(key: string, allowed?: readonly string[]): Fields | undefined {
    if (!this.has(key)) return undefined;
    const value = this.#value[key];
    if (!isObject(value)) fail(this.at(key), "an object", value);
    const fields = new Fields(value, this.at(key));
    if (allowed) fields.only(allowed);
    return fields;
  }

  /** A list of strings; `[]` when absent. */
  stringList(key: string): string[] {
    if (!this.has(key)) return [];
    const value = this.#value[key];
    if (!Array.isArray(value) || value.some((item) => typeof item !== "string")) {
      fail(this.at(key), "a list of strings", value);
    }
    return value;
  }

  /** A string or a non-empty list of strings, as a list. */
  stringOrList(key: string): string[] {
    const value = this.#value[key];
    if (typeof value === "string") return [value];
    if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === "string")) {
      return value;
    }
    return fail(this.at(key), "a string or a non-empty list of strings", value);
  }
}

// RFC 9110 token characters.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\0\r\n]/;
const utf8 = new TextEncoder();

/** Checks a header name from a conf and returns it in lower case. */
export function headerName(field: string, name: string): string {
  if (!TOKEN.test(name)) fail(field, "a header name (letters, digits and !#$%&'*+-.^_`|~)", name);
  return name.toLowerCase();
}

/**
 * Turns text from a conf into a header value: a byte string holding its UTF-8 bytes (what
 * APISIX would send for the same text), without NUL, CR or LF and without edge whitespace.
 */
export function headerValue(field: string, text: string): string {
  if (BAD_VALUE.test(text)) fail(field, "a header value without NUL, CR or LF", text);
  return toByteString(text.trim());
}

/** The UTF-8 bytes of `text` as a byte string (one character per byte). */
export function toByteString(text: string): string {
  // deno-lint-ignore no-control-regex
  if (/^[\x00-\x7f]*$/.test(text)) return text;
  let out = "";
  for (const byte of utf8.encode(text)) out += String.fromCharCode(byte);
  return out;
}

/**
 * Reads a header object `{"name": "value" | ["value", ...]}` into `[lower-case name, text]`
 * pairs, in conf order. The text is checked for NUL, CR and LF but not yet turned into a byte
 * string (see {@linkcode headerValue}), so it can still be a template.
 */
export function headerPairs(fields: Fields): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const key of fields.keys()) {
    const name = headerName(fields.at(key), key);
    for (const text of fields.stringOrList(key)) {
      if (BAD_VALUE.test(text)) fail(fields.at(key), "a header value without NUL, CR or LF", text);
      pairs.push([name, text]);
    }
  }
  return pairs;
}
