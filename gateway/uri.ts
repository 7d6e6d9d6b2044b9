/**
 * URI handling the way nginx and APISIX do it, for the local gateway: `$uri` is the decoded,
 * normalized path; args are unescaped with `+` as space and bare keys kept; a rewritten path is
 * escaped with `ngx_escape_uri` (only space, `#`, `%`, `?`, controls and non-ASCII); rewritten
 * args are encoded like `ngx.encode_args`. Strings here are Latin-1 byte strings.
 *
 * @module
 */
import type { Entry } from "./wire.ts";

function hex(c: string): number {
  return /^[0-9a-fA-F]{2}$/.test(c) ? parseInt(c, 16) : -1;
}

/** Decodes `%XX` escapes into bytes (a Latin-1 string); `plus` also turns `+` into space. */
export function unescape(text: string, plus = false): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "%" && hex(text.slice(i + 1, i + 3)) >= 0) {
      out += String.fromCharCode(hex(text.slice(i + 1, i + 3)));
      i += 2;
    } else if (c === "+" && plus) {
      out += " ";
    } else {
      out += c;
    }
  }
  return out;
}

/** `$uri`: the path decoded, with `.`/`..` segments resolved and repeated slashes merged. */
export function normalizePath(rawPath: string): string {
  const decoded = unescape(rawPath);
  const segments: string[] = [];
  for (const segment of decoded.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") segments.pop();
    else segments.push(segment);
  }
  const trailing = decoded.endsWith("/") && segments.length > 0 ? "/" : "";
  return "/" + segments.join("/") + trailing;
}

/** `ngx.req.get_uri_args()`: one entry per value, bare keys without a value, `&&` skipped. */
export function parseQuery(query: string): Entry[] {
  const args: Entry[] = [];
  for (const part of query.split("&")) {
    if (part === "") continue;
    const at = part.indexOf("=");
    if (at < 0) args.push([unescape(part, true), null]);
    else args.push([unescape(part.slice(0, at), true), unescape(part.slice(at + 1), true)]);
  }
  return args;
}

/** `ngx_escape_uri` in URI mode: escapes space, `#`, `%`, `?`, controls and bytes ≥ 0x7F. */
export function escapePath(path: string): string {
  let out = "";
  for (const c of path) {
    const code = c.charCodeAt(0);
    out += code <= 0x20 || code >= 0x7f || c === "#" || c === "%" || c === "?"
      ? `%${code.toString(16).toUpperCase().padStart(2, "0")}`
      : c;
  }
  return out;
}

/** Escapes one query component as `ngx.escape_uri` does (all but letters, digits, `-._~`). */
export function escapeComponent(text: string): string {
  let out = "";
  for (const c of text) {
    out += /[A-Za-z0-9\-._~]/.test(c)
      ? c
      : `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** `ngx.encode_args`: `name=value` pairs joined by `&`, a bare name for a flag. */
export function encodeArgs(args: readonly Entry[]): string {
  return args.map(([name, value]) =>
    value === null ? escapeComponent(name) : `${escapeComponent(name)}=${escapeComponent(value)}`
  ).join("&");
}

/**
 * Applies a Rewrite's args to the current ones (§5.2.5): an entry without a value removes the
 * name; the first entry for a name replaces its values, later ones append; other names stay.
 */
export function applyArgs(current: readonly Entry[], changes: readonly Entry[]): Entry[] {
  const byName = new Map<string, Array<string | null>>();
  for (const [name, value] of current) {
    const values = byName.get(name) ?? [];
    values.push(value);
    byName.set(name, values);
  }
  const replaced = new Set<string>();
  for (const [name, value] of changes) {
    if (value === null) {
      byName.delete(name);
      replaced.delete(name);
      continue;
    }
    if (!replaced.has(name)) {
      byName.set(name, []);
      replaced.add(name);
    }
    byName.get(name)!.push(value);
  }
  const out: Entry[] = [];
  for (const [name, values] of byName) for (const value of values) out.push([name, value]);
  return out;
}
