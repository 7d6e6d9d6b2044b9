/**
 * `content-digest`: sends the request body's SHA-256 upstream as
 * `Content-Digest: sha-256=:<base64>:` (RFC 9530), replacing whatever the client sent, so the
 * upstream can check the body it receives.
 *
 * Conf: `{"require": true}` (default `false`). With `require`, the client must send a
 * `Content-Digest` with a `sha-256` or `sha-512` digest, and every such digest must match the
 * body; otherwise the request is answered with 400 and a plain-text reason. The body is fetched
 * from APISIX once per call.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { definePlugin, type PluginResponse } from "../mod.ts";
import { Fields } from "./conf_reader.ts";

/** The parsed conf. */
export interface ContentDigestConf {
  require: boolean;
}

const ALGORITHMS: Readonly<Record<string, "sha256" | "sha512">> = {
  "sha-256": "sha256",
  "sha-512": "sha512",
};

// node:crypto hashes synchronously in the worker; crypto.subtle.digest hops to a thread pool
// and back, which costs several times the hash itself for bodies of a few KiB.
function digest(algorithm: "sha256" | "sha512", body: Uint8Array): string {
  return createHash(algorithm).update(body).digest("base64");
}

/**
 * The members of a `Content-Digest` field (an RFC 8941 dictionary of byte sequences) as
 * `algorithm → base64`, or `null` when it is malformed.
 */
export function parseContentDigest(field: string): Map<string, string> | null {
  const digests = new Map<string, string>();
  for (const member of field.split(",")) {
    const match = /^\s*([a-z*][a-z0-9_.*-]*)=:([A-Za-z0-9+/]*={0,2}):(?:;[^,]*)?\s*$/.exec(
      member,
    );
    if (!match) return null;
    digests.set(match[1]!, match[2]!);
  }
  return digests;
}

function reject(res: PluginResponse, reason: string): void {
  res.headers.set("content-type", "text/plain; charset=utf-8");
  res.status = 400;
  res.body = `${reason}\n`;
}

export default definePlugin<ContentDigestConf>({
  name: "content-digest",
  parseConf(raw) {
    const conf = Fields.parse(raw, ["require"]);
    return { require: conf.boolean("require", false) };
  },
  // Every call digests the body: the runner asks APISIX for it before the call.
  prefetch: () => ({ requestBody: true }),
  async requestFilter(conf, req, res) {
    const body = await req.body();
    const sha256 = digest("sha256", body);
    const sent = req.headers.get("content-digest");
    if (conf.require) {
      if (sent === null) return reject(res, "Content-Digest is required");
      const digests = parseContentDigest(sent);
      if (!digests) return reject(res, "Content-Digest is malformed");
      let checked = 0;
      for (const [name, value] of digests) {
        const algorithm = ALGORITHMS[name];
        if (!algorithm) continue;
        const actual = algorithm === "sha256" ? sha256 : digest(algorithm, body);
        if (value !== actual) {
          return reject(res, `Content-Digest ${name} does not match the request body`);
        }
        checked++;
      }
      if (checked === 0) return reject(res, "Content-Digest has no sha-256 or sha-512 digest");
    }
    const field = `sha-256=:${sha256}:`;
    if (sent !== field) req.headers.set("content-digest", field);
  },
});
