/**
 * `request-body-rewrite`: replaces the request body sent upstream (the Go runner's plugin of the
 * same name and conf; APISIX ≥ 3.6).
 *
 * Conf: `{"new_body": "request body rewrite"}`. APISIX cannot send an empty replacement, so
 * `new_body` must not be empty (the Go runner accepts `""` and then does nothing; here that conf
 * is rejected with a message, which leaves the route without the plugin, the same effect).
 *
 * @module
 */
import { definePlugin } from "../mod.ts";
import { Fields } from "./conf_reader.ts";

/** The parsed conf. */
export interface RequestBodyRewriteConf {
  newBody: Uint8Array;
}

export default definePlugin<RequestBodyRewriteConf>({
  name: "request-body-rewrite",
  parseConf(raw) {
    const conf = Fields.parse(raw, ["new_body"]);
    return { newBody: new TextEncoder().encode(conf.string("new_body", { nonEmpty: true })) };
  },
  requestFilter(conf, req) {
    req.setBody(conf.newBody);
  },
});
