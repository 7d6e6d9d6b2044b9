/**
 * The ExtraInfo a plugin declares it reads on every call with a conf (`Plugin.prefetch`): the
 * checks on what the plugin returns, and the form the runner and the worker exchange.
 *
 * A prefetched item is asked from APISIX by the runner before the call goes to the plugin's
 * sandbox and travels with the call, instead of the worker asking for it mid-call: one round
 * trip between the runner and the sandbox less per item.
 *
 * @module
 */
import { ByteFormatError, type ByteReader, type ByteWriter, decodeUtf8 } from "./bytes.ts";

/** Most variables one conf may prefetch. */
export const MAX_PREFETCH_VARS = 32;
/** Longest variable name that may be prefetched, in UTF-8 bytes. */
export const MAX_PREFETCH_NAME_BYTES = 256;

/** A checked prefetch declaration. */
export interface PrefetchList {
  vars: string[];
  requestBody: boolean;
  responseBody: boolean;
}

const encoder = new TextEncoder();
// APISIX looks variables up by name; control characters or spaces are never part of one.
const VAR_NAME = /^[\x21-\x7e]+$/;

/**
 * Checks what a plugin's `prefetch(conf)` returned; throws a `TypeError` that says what is
 * wrong. `undefined` or `null` means nothing to prefetch; duplicates are dropped.
 */
export function checkPrefetch(value: unknown): PrefetchList | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError("prefetch must return an object { vars?, requestBody?, responseBody? }");
  }
  const { vars = [], requestBody = false, responseBody = false, ...rest } = value as Record<
    string,
    unknown
  >;
  const unknown = Object.keys(rest);
  if (unknown.length) throw new TypeError(`prefetch: unknown key ${JSON.stringify(unknown[0])}`);
  if (typeof requestBody !== "boolean" || typeof responseBody !== "boolean") {
    throw new TypeError("prefetch: requestBody and responseBody must be booleans");
  }
  if (!Array.isArray(vars)) throw new TypeError("prefetch: vars must be an array of names");
  const names = [...new Set(vars)];
  if (names.length > MAX_PREFETCH_VARS) {
    throw new TypeError(`prefetch: at most ${MAX_PREFETCH_VARS} vars, got ${names.length}`);
  }
  for (const name of names) {
    if (
      typeof name !== "string" || !VAR_NAME.test(name) ||
      encoder.encode(name).length > MAX_PREFETCH_NAME_BYTES
    ) {
      throw new TypeError(
        `prefetch: a var name must be 1-${MAX_PREFETCH_NAME_BYTES} printable ASCII characters ` +
          `without spaces, got ${JSON.stringify(name)}`,
      );
    }
  }
  if (!names.length && !requestBody && !responseBody) return null;
  return { vars: names as string[], requestBody, responseBody };
}

/** One ExtraInfo question: what is asked, and the variable's name (empty for a body). */
export type PrefetchQuestion = readonly ["var" | "reqBody" | "respBody", string];

/**
 * The questions `list` makes for one call, in the order they go to APISIX: the vars, then the
 * body of the call's phase (`response`: the upstream's), unless an earlier plugin of the chain
 * already replaced that body, which is then what the plugin reads.
 */
export function prefetchQuestions(
  list: PrefetchList,
  response: boolean,
  bodyReplaced: boolean,
): PrefetchQuestion[] {
  const questions: PrefetchQuestion[] = list.vars.map((name) => ["var", name] as const);
  if (!bodyReplaced && (response ? list.responseBody : list.requestBody)) {
    questions.push([response ? "respBody" : "reqBody", ""]);
  }
  return questions;
}

/** Writes `list` (or nothing to prefetch) as `u8 flags, u8 count, count × (u16 n, n bytes)`. */
export function writePrefetch(out: ByteWriter, list: PrefetchList | null): void {
  if (!list) {
    out.u8(0).u8(0);
    return;
  }
  out.u8((list.requestBody ? 1 : 0) | (list.responseBody ? 2 : 0)).u8(list.vars.length);
  for (const name of list.vars) {
    const bytes = encoder.encode(name);
    out.u16(bytes.length).raw(bytes);
  }
}

/**
 * Reads what {@linkcode writePrefetch} wrote. The worker is untrusted: anything outside the
 * limits throws {@linkcode ByteFormatError}.
 */
export function readPrefetch(body: ByteReader): PrefetchList | null {
  const flags = body.u8();
  const count = body.u8();
  if (flags > 3 || count > MAX_PREFETCH_VARS) {
    throw new ByteFormatError("a prefetch list is out of bounds");
  }
  if (flags === 0 && count === 0) return null;
  const vars: string[] = [];
  for (let i = 0; i < count; i++) {
    const n = body.u16();
    if (n === 0 || n > MAX_PREFETCH_NAME_BYTES) {
      throw new ByteFormatError("a prefetched var name is out of bounds");
    }
    vars.push(decodeUtf8(body.raw(n)));
  }
  return { vars, requestBody: (flags & 1) !== 0, responseBody: (flags & 2) !== 0 };
}
