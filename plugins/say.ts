/**
 * `say`: answers the request itself with a fixed body (the Go runner's `say`, extended).
 *
 * Conf: `{"body": "hello", "status": 200, "headers": {"x-a": "1", "x-b": ["1", "2"]}}`;
 * `body` is required, `status` defaults to 200, a header value may be a list.
 *
 * @module
 */
import { definePlugin } from "../mod.ts";

interface SayConf {
  body: string;
  status: number;
  headers: Array<[string, string]>;
}

export default definePlugin<SayConf>({
  name: "say",
  parseConf(raw) {
    const conf = JSON.parse(raw);
    if (typeof conf !== "object" || conf === null) throw new TypeError("conf must be an object");
    if (typeof conf.body !== "string") throw new TypeError("body must be a string");
    const status = conf.status ?? 200;
    if (!Number.isInteger(status) || status < 100 || status > 599) {
      throw new TypeError("status must be an integer from 100 to 599");
    }
    const headers: Array<[string, string]> = [];
    for (const [name, value] of Object.entries(conf.headers ?? {})) {
      for (const v of Array.isArray(value) ? value : [value]) {
        if (typeof v !== "string") throw new TypeError(`header ${name} must be a string or a list`);
        headers.push([name, v]);
      }
    }
    return { body: conf.body, status, headers };
  },
  requestFilter(conf, _req, res) {
    for (const [name, value] of conf.headers) res.headers.append(name, value);
    res.status = conf.status;
    res.body = conf.body;
  },
});
