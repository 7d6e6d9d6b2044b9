/**
 * `say`: answers the request itself, without proxying it (the Go runner's `say`, extended).
 *
 * Conf: `{"body": "hello", "status": 200, "headers": {"x-a": "1", "x-b": ["1", "2"]}}`.
 * `body` is required (it may be `""`), `status` defaults to 200, and a header value may be a
 * list, which sends the header once per value.
 *
 * Unlike the Go runner's `say`, which passes a request through when `body` is `""` and always
 * adds `X-Resp-A6-Runner: Go`, this one always answers and adds only the configured headers.
 *
 * @module
 */
import { definePlugin } from "../mod.ts";
import { Fields, headerPairs, headerValue } from "./conf_reader.ts";

/** The parsed conf. */
export interface SayConf {
  body: string;
  status: number;
  headers: Array<[string, string]>;
}

export default definePlugin<SayConf>({
  name: "say",
  parseConf(raw) {
    const conf = Fields.parse(raw, ["body", "status", "headers"]);
    const headers = conf.object("headers");
    return {
      body: conf.string("body"),
      status: conf.integer("status", 100, 599, 200),
      headers: headers
        ? headerPairs(headers).map(([name, text]) => [name, headerValue(headers.at(name), text)])
        : [],
    };
  },
  requestFilter(conf, _req, res) {
    for (const [name, value] of conf.headers) res.headers.append(name, value);
    res.status = conf.status;
    res.body = conf.body;
  },
});
