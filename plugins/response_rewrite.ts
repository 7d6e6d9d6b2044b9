/**
 * `response-rewrite` (response phase, `ext-plugin-post-resp`): changes the upstream's response
 * (the Go runner's plugin of the same name and conf).
 *
 * ```json
 * {
 *   "status": 201,
 *   "headers": { "x-server": "deno", "x-tags": ["a", "b"] },
 *   "body": "replaced",
 *   "filters": [{ "regex": "(?i)hello", "scope": "global", "replace": "bye" }]
 * }
 * ```
 *
 * - `status`: the status the client gets.
 * - `headers`: headers to set (a list value sends the header once per value); or, as in
 *   APISIX's response-rewrite, `{"add": {...}, "set": {...}, "remove": [...]}`.
 * - `body`: a new body. Ignored when `filters` is given, as in the Go runner.
 * - `filters`: regular expressions applied in order to the upstream body, each replacing its
 *   first match (`scope` `"once"`, the default) or every match (`"global"`). `replace` may use
 *   `$0` (the match), `$1` or `${1}` (groups), `${name}` (named groups) and `$$` (a `$`). The
 *   body is fetched from APISIX only when there are filters, and replaced only when one matched.
 *   A leading `(?i)`, `(?m)` or `(?s)` and Go's `(?P<name>...)` are understood, so the Go
 *   runner's expressions keep working. A gzip or deflate body is decompressed first (and sent
 *   back uncompressed).
 *
 * Where the Go runner, given `status`, always answers 200 and adds `X-Resp-A6-Runner: Go`, this
 * one answers with the configured status and adds only the configured headers.
 *
 * @module
 */
import { definePlugin, type UpstreamResponse } from "../mod.ts";
import { fail, Fields, headerName, headerPairs, toByteString } from "./conf_reader.ts";

/** One compiled filter. */
export interface BodyFilter {
  regex: RegExp;
  replace: string;
}

/** The parsed conf. */
export interface ResponseRewriteConf {
  status: number;
  addHeaders: Array<[string, string]>;
  setHeaders: Array<[string, string]>;
  removeHeaders: string[];
  body: string;
  filters: BodyFilter[];
}

/**
 * Compiles a filter's expression; Go/PCRE-style leading flags and `(?P<name>` are translated.
 * Throws a `SyntaxError` for an expression JavaScript cannot compile.
 */
export function compileFilter(source: string, global: boolean): RegExp {
  let flags = global ? "g" : "";
  let pattern = source;
  const leading = /^\(\?([a-zA-Z]+)\)/.exec(pattern);
  if (leading) {
    for (const flag of leading[1]!) {
      if (!"ims".includes(flag)) {
        throw new SyntaxError(`the inline flag "${flag}" is not supported (only i, m and s)`);
      }
      if (!flags.includes(flag)) flags += flag;
    }
    pattern = pattern.slice(leading[0].length);
  }
  return new RegExp(pattern.replaceAll("(?P<", "(?<"), flags);
}

/** Expands `$0`, `$1`, `${1}`, `${name}` and `$$` in `template` for one match. */
export function expandReplacement(template: string, match: RegExpExecArray): string {
  return template.replace(/\$(\$|\d+|\{(\w+)\})/g, (whole, token: string, braced?: string) => {
    if (token === "$") return "$";
    const key = braced ?? token;
    const value = /^\d+$/.test(key) ? match[Number(key)] : match.groups?.[key];
    return value ?? (/^\d+$/.test(key) && Number(key) < match.length ? "" : whole);
  });
}

function applyFilters(text: string, filters: readonly BodyFilter[], bytes: boolean) {
  let matched = false;
  for (const { regex, replace } of filters) {
    // Text decoded as Latin-1 needs the replacement as UTF-8 bytes, one character per byte.
    const template = bytes ? toByteString(replace) : replace;
    regex.lastIndex = 0;
    text = text.replace(regex, (...args) => {
      matched = true;
      const groups = typeof args.at(-1) === "object" ? args.at(-1) : undefined;
      const captures = args.slice(0, groups ? -3 : -2) as string[];
      const match = Object.assign(captures, { groups }) as unknown as RegExpExecArray;
      return expandReplacement(template, match);
    });
  }
  return { text, matched };
}

function latin1(body: Uint8Array): string {
  let text = "";
  // In slices: spreading a large body into one call would overflow the stack.
  for (let i = 0; i < body.length; i += 8192) {
    text += String.fromCharCode(...body.subarray(i, i + 8192));
  }
  return text;
}

async function decompress(body: Uint8Array<ArrayBuffer>, encoding: string): Promise<Uint8Array> {
  const stream = new Blob([body]).stream()
    .pipeThrough(new DecompressionStream(encoding as CompressionFormat));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function filterBody(conf: ResponseRewriteConf, res: UpstreamResponse): Promise<void> {
  const encoding = (res.headers.get("content-encoding") ?? "identity").trim().toLowerCase();
  const format = encoding === "gzip" || encoding === "x-gzip"
    ? "gzip"
    : encoding === "deflate"
    ? "deflate"
    : encoding === "identity"
    ? null
    : undefined;
  if (format === undefined) {
    console.warn(`response-rewrite: filters skipped, cannot decode a ${encoding} body`);
    return;
  }
  const raw = await res.body();
  const body = format ? await decompress(raw, format) : raw;
  let text: string;
  let bytes = false;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(body);
  } catch {
    // Not UTF-8: work on the bytes, one character each, so every byte survives.
    text = latin1(body);
    bytes = true;
  }
  const result = applyFilters(text, conf.filters, bytes);
  if (!result.matched) return;
  res.setBody(
    bytes ? Uint8Array.from(result.text, (c) => c.charCodeAt(0)) : result.text,
  );
  if (format) res.headers.delete("content-encoding");
}

function parse(raw: string): ResponseRewriteConf {
  const conf = Fields.parse(raw, ["status", "headers", "body", "filters"]);
  let addHeaders: Array<[string, string]> = [];
  let setHeaders: Array<[string, string]> = [];
  let removeHeaders: string[] = [];
  const headers = conf.object("headers");
  const bytes = (pairs: Array<[string, string]>) =>
    pairs.map(([name, text]): [string, string] => [name, toByteString(text.trim())]);
  if (headers) {
    const keys = headers.keys();
    const structured = keys.length > 0 &&
      keys.every((k) => ["add", "set", "remove"].includes(k)) &&
      keys.every((k) => typeof headers.get(k) === "object");
    if (structured) {
      const add = headers.object("add");
      const set = headers.object("set");
      if (add) addHeaders = bytes(headerPairs(add));
      if (set) setHeaders = bytes(headerPairs(set));
      removeHeaders = headers.stringList("remove").map((name, i) =>
        headerName(`headers.remove[${i}]`, name)
      );
    } else {
      setHeaders = bytes(headerPairs(headers));
    }
  }
  const filters: BodyFilter[] = [];
  const list = conf.get("filters");
  if (list !== undefined) {
    if (!Array.isArray(list)) fail("filters", "a list of {regex, scope, replace} objects", list);
    list.forEach((item, i) => {
      const at = `filters[${i}]`;
      if (typeof item !== "object" || item === null || Array.isArray(item)) {
        fail(at, "an object with regex, scope and replace", item);
      }
      const filter = new Fields(item as Record<string, unknown>, at);
      filter.only(["regex", "scope", "replace"]);
      const source = filter.string("regex", { nonEmpty: true });
      const scope = filter.optionalString("scope") ?? "once";
      if (scope !== "once" && scope !== "global") {
        fail(filter.at("scope"), '"once" or "global"', scope);
      }
      let regex: RegExp;
      try {
        regex = compileFilter(source, scope === "global");
      } catch (error) {
        fail(
          filter.at("regex"),
          `a valid regular expression (${(error as Error).message})`,
          source,
        );
      }
      filters.push({ regex, replace: filter.optionalString("replace") ?? "" });
    });
  }
  return {
    status: conf.has("status") ? conf.integer("status", 100, 599) : 0,
    addHeaders,
    setHeaders,
    removeHeaders,
    body: conf.optionalString("body") ?? "",
    filters,
  };
}

export default definePlugin<ResponseRewriteConf>({
  name: "response-rewrite",
  parseConf: parse,
  async responseFilter(conf, res) {
    if (conf.status) res.status = conf.status;
    for (const [name, value] of conf.addHeaders) res.headers.append(name, value);
    const setOnce = new Set<string>();
    for (const [name, value] of conf.setHeaders) {
      if (setOnce.has(name)) res.headers.append(name, value);
      else res.headers.set(name, value);
      setOnce.add(name);
    }
    for (const name of conf.removeHeaders) res.headers.delete(name);
    if (conf.filters.length) {
      await filterBody(conf, res);
    } else if (conf.body !== "") {
      res.setBody(conf.body);
      // The new body is not encoded, whatever the upstream's was.
      res.headers.delete("content-encoding");
    }
  },
});
