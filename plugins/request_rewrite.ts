/**
 * `request-rewrite`: changes the request before it goes upstream, and adds headers to the
 * client's response, like APISIX's proxy-rewrite.
 *
 * ```json
 * {
 *   "path": "/v2$uri",
 *   "host": "backend.internal",
 *   "headers": {
 *     "add": { "x-forwarded-for": "$remote_addr" },
 *     "set": { "x-route": "${route_id ?? none}", "x-tags": ["a", "b"] },
 *     "remove": ["cookie"]
 *   },
 *   "args": { "set": { "source": "apisix" }, "remove": ["debug"] },
 *   "response_headers": { "x-served-by": "deno" }
 * }
 * ```
 *
 * Every field is optional. Values may reference APISIX variables as `$name`, `${name}` or
 * `${name ?? fallback}` (see `var_template.ts`); only the variables a conf references are
 * fetched, each once per call. `headers` may also be a plain object, which means `set` (as in
 * proxy-rewrite). Header operations run in proxy-rewrite's order: add, set, remove. A `path`
 * with `?` sets the args of its query. `response_headers` may not name headers APISIX ignores
 * while proxying (`content-type`, `server`, ...).
 *
 * @module
 */
import { definePlugin, isIgnoredResponseHeader, type PluginRequest } from "../mod.ts";
import { ConfError, fail, Fields, headerName, headerPairs, toByteString } from "./conf_reader.ts";
import { fetchVars, MAX_PREFETCH_VARS, VarTemplate } from "./var_template.ts";

type Pairs = Array<[string, VarTemplate]>;

/** The parsed conf. */
export interface RequestRewriteConf {
  path: VarTemplate | null;
  host: VarTemplate | null;
  addHeaders: Pairs;
  setHeaders: Pairs;
  removeHeaders: string[];
  setArgs: Pairs;
  removeArgs: string[];
  responseHeaders: Pairs;
  /** Every variable the templates reference. */
  vars: string[];
}

function templates(pairs: Array<[string, string]>, fields: Fields): Pairs {
  return pairs.map(([name, text]) => [name, VarTemplate.parse(fields.at(name), text)]);
}

function argPairs(fields: Fields): Pairs {
  const pairs: Pairs = [];
  for (const key of fields.keys()) {
    if (key === "") fail(fields.at(key), "a non-empty arg name");
    for (const text of fields.stringOrList(key)) {
      pairs.push([key, VarTemplate.parse(fields.at(key), text)]);
    }
  }
  return pairs;
}

function parse(raw: string): RequestRewriteConf {
  const conf = Fields.parse(raw, ["path", "host", "headers", "args", "response_headers"]);
  const pathText = conf.optionalString("path", { nonEmpty: true });
  if (pathText !== undefined && !/^[/$]/.test(pathText)) {
    fail("path", 'a path starting with "/" (or with a variable such as "$uri")', pathText);
  }
  const path = pathText === undefined ? null : VarTemplate.parse("path", pathText);
  const hostText = conf.optionalString("host", { nonEmpty: true });
  if (hostText !== undefined && /[\0\r\n]/.test(hostText)) {
    fail("host", "a host without NUL, CR or LF", hostText);
  }
  const host = hostText === undefined ? null : VarTemplate.parse("host", hostText);

  let addHeaders: Pairs = [];
  let setHeaders: Pairs = [];
  let removeHeaders: string[] = [];
  const headers = conf.object("headers");
  if (headers) {
    const keys = headers.keys();
    const structured = keys.length > 0 &&
      keys.every((k) => ["add", "set", "remove"].includes(k)) &&
      keys.every((k) => typeof headers.get(k) === "object");
    if (structured) {
      const add = headers.object("add");
      const set = headers.object("set");
      if (add) addHeaders = templates(headerPairs(add), add);
      if (set) setHeaders = templates(headerPairs(set), set);
      removeHeaders = headers.stringList("remove").map((name, i) => {
        const lower = headerName(`headers.remove[${i}]`, name);
        // APISIX would also blank the upstream Host (PROTOCOL.md §5.2).
        if (lower === "host") fail(`headers.remove[${i}]`, "a header other than host", name);
        return lower;
      });
    } else {
      // The plain form, as in proxy-rewrite: every entry is set.
      setHeaders = templates(headerPairs(headers), headers);
    }
  }

  let setArgs: Pairs = [];
  let removeArgs: string[] = [];
  const args = conf.object("args", ["set", "remove"]);
  if (args) {
    const set = args.object("set");
    if (set) setArgs = argPairs(set);
    removeArgs = args.stringList("remove");
  }

  let responseHeaders: Pairs = [];
  const response = conf.object("response_headers");
  if (response) {
    responseHeaders = templates(headerPairs(response), response);
    for (const [name] of responseHeaders) {
      if (isIgnoredResponseHeader(name)) {
        throw new ConfError(
          `response_headers.${name}: APISIX ignores this header on a proxied response ` +
            "(use response-rewrite in ext-plugin-post-resp to change it)",
        );
      }
    }
  }

  const all = [
    path,
    host,
    ...[addHeaders, setHeaders, setArgs, responseHeaders].flat().map(([, t]) => t),
  ];
  const vars = [...new Set(all.flatMap((t) => t?.vars ?? []))];
  return {
    path,
    host,
    addHeaders,
    setHeaders,
    removeHeaders,
    setArgs,
    removeArgs,
    responseHeaders,
    vars,
  };
}

function fetchAll(conf: RequestRewriteConf, req: PluginRequest) {
  return conf.vars.length
    ? fetchVars(conf.vars, (name) => req.var(name))
    : Promise.resolve(new Map<string, string | null>());
}

export default definePlugin<RequestRewriteConf>({
  name: "request-rewrite",
  parseConf: parse,
  // Every call reads every variable the templates name: the runner asks APISIX before the call.
  prefetch: (conf) =>
    conf.vars.length ? { vars: conf.vars.slice(0, MAX_PREFETCH_VARS) } : undefined,
  async requestFilter(conf, req, res) {
    const values = await fetchAll(conf, req);
    // Header values are byte strings: a variable's text goes as its UTF-8 bytes.
    const header = (template: VarTemplate) => toByteString(template.render(values));
    if (conf.path) {
      const path = conf.path.render(values);
      if (!path.startsWith("/")) {
        throw new TypeError(
          `request-rewrite: the path template made ${JSON.stringify(path)}, which does not ` +
            'start with "/"',
        );
      }
      req.path = path;
    }
    if (conf.host) req.headers.set("host", header(conf.host));
    for (const [name, template] of conf.addHeaders) req.headers.append(name, header(template));
    const setOnce = new Set<string>();
    for (const [name, template] of conf.setHeaders) {
      // A list value sets the first and appends the rest.
      if (setOnce.has(name)) req.headers.append(name, header(template));
      else req.headers.set(name, header(template));
      setOnce.add(name);
    }
    for (const name of conf.removeHeaders) req.headers.delete(name);
    const argOnce = new Set<string>();
    for (const [name, template] of conf.setArgs) {
      if (argOnce.has(name)) req.args.append(name, template.render(values));
      else req.args.set(name, template.render(values));
      argOnce.add(name);
    }
    for (const name of conf.removeArgs) req.args.delete(name);
    for (const [name, template] of conf.responseHeaders) {
      res.headers.append(name, header(template));
    }
  },
});
