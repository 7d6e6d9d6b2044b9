/**
 * `jwt-auth`: an example third-party plugin package with a dependency. It verifies
 * `Authorization: Bearer <JWT>` with [jose](https://github.com/panva/jose), checks `exp` and
 * `nbf`, copies chosen claims into upstream request headers, and answers 401 with a
 * `WWW-Authenticate` header otherwise.
 *
 * Conf (one of `secret` and `jwks_file` is required):
 *
 * ```json
 * { "secret": "a shared HS256 secret",
 *   "jwks_file": "/etc/apisix/jwks.json",
 *   "issuer": "https://issuer.example", "audience": "api",
 *   "claims_to_headers": { "sub": "x-user-id", "scope": "x-user-scope" },
 *   "clock_tolerance_s": 5 }
 * ```
 *
 * With `secret` the token must be HS256; with `jwks_file` (a JSON Web Key Set the operator
 * grants `read` on in the runner configuration) RS256 or ES256, the key chosen by `kid`.
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { createLocalJWKSet, type JWTPayload, jwtVerify, type JWTVerifyGetKey } from "jose";

/** The parsed conf. */
export interface JwtAuthConf {
  key: Uint8Array | JWTVerifyGetKey;
  algorithms: string[];
  issuer?: string;
  audience?: string;
  claimsToHeaders: Array<[claim: string, header: string]>;
  clockToleranceS: number;
}

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Longest claim value copied into a header; a longer one is refused, not cut. */
const MAX_HEADER_VALUE = 4096;

function optionalString(
  conf: Record<string, unknown>,
  key: string,
): string | undefined {
  const value = conf[key];
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value === "") {
    throw new TypeError(`${key}: expected a non-empty string`);
  }
  return value;
}

async function parse(raw: string): Promise<JwtAuthConf> {
  const conf = JSON.parse(raw);
  if (typeof conf !== "object" || conf === null || Array.isArray(conf)) {
    throw new TypeError("the conf: expected a JSON object");
  }
  const secret = optionalString(conf, "secret");
  const jwksFile = optionalString(conf, "jwks_file");
  if ((secret === undefined) === (jwksFile === undefined)) {
    throw new TypeError(
      "expected exactly one of secret (HS256) and jwks_file (RS256/ES256)",
    );
  }
  let key: JwtAuthConf["key"];
  if (secret !== undefined) {
    key = new TextEncoder().encode(secret);
  } else {
    // Read once per route conf; the operator grants read on this file.
    const jwks = JSON.parse(await Deno.readTextFile(jwksFile!));
    key = createLocalJWKSet(jwks);
  }
  const mapping = conf.claims_to_headers ?? {};
  if (
    typeof mapping !== "object" || mapping === null || Array.isArray(mapping)
  ) {
    throw new TypeError(
      "claims_to_headers: expected an object of claim names to header names",
    );
  }
  const claimsToHeaders: Array<[string, string]> = [];
  for (const [claim, header] of Object.entries(mapping)) {
    if (typeof header !== "string" || !HEADER_NAME.test(header)) {
      throw new TypeError(`claims_to_headers.${claim}: expected a header name`);
    }
    claimsToHeaders.push([claim, header.toLowerCase()]);
  }
  const clockToleranceS = conf.clock_tolerance_s ?? 0;
  if (
    !Number.isInteger(clockToleranceS) || clockToleranceS < 0 ||
    clockToleranceS > 300
  ) {
    throw new TypeError("clock_tolerance_s: expected an integer from 0 to 300");
  }
  const parsed: JwtAuthConf = {
    key,
    algorithms: secret !== undefined ? ["HS256"] : ["RS256", "ES256"],
    claimsToHeaders,
    clockToleranceS,
  };
  const issuer = optionalString(conf, "issuer");
  const audience = optionalString(conf, "audience");
  if (issuer !== undefined) parsed.issuer = issuer;
  if (audience !== undefined) parsed.audience = audience;
  return parsed;
}

/** A claim as a header value: strings as they are, anything else as JSON; null if unfit. */
function headerValue(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  const text = typeof value === "string" ? value : JSON.stringify(value);
  // No control characters (a CR/LF would split the header) and a bounded length.
  // deno-lint-ignore no-control-regex
  return text.length <= MAX_HEADER_VALUE && !/[\x00-\x1f\x7f]/.test(text) ? text : null;
}

async function verify(conf: JwtAuthConf, token: string): Promise<JWTPayload> {
  const options = {
    algorithms: conf.algorithms,
    clockTolerance: conf.clockToleranceS,
    ...(conf.issuer !== undefined ? { issuer: conf.issuer } : {}),
    ...(conf.audience !== undefined ? { audience: conf.audience } : {}),
  };
  const { payload } = conf.key instanceof Uint8Array
    ? await jwtVerify(token, conf.key, options)
    : await jwtVerify(token, conf.key, options);
  return payload;
}

export default definePlugin<JwtAuthConf>({
  name: "jwt-auth",
  parseConf: parse,
  async requestFilter(conf, req, res) {
    const authorization = req.headers.get("authorization") ?? "";
    const match = authorization.match(/^Bearer ([A-Za-z0-9_.-]+)$/);
    let payload: JWTPayload | null = null;
    let problem = "a Bearer token is required";
    if (match) {
      try {
        payload = await verify(conf, match[1]!);
      } catch (error) {
        // jose's codes: ERR_JWT_EXPIRED, ERR_JWS_SIGNATURE_VERIFICATION_FAILED, ...
        problem = (error as { code?: string }).code === "ERR_JWT_EXPIRED"
          ? "the token has expired"
          : "the token is not valid";
      }
    }
    if (!payload) {
      res.status = 401;
      res.headers.set(
        "www-authenticate",
        `Bearer error="invalid_token", error_description="${problem}"`,
      );
      res.headers.set("content-type", "text/plain");
      res.body = `${problem}\n`;
      return;
    }
    for (const [claim, header] of conf.claimsToHeaders) {
      const value = headerValue(payload[claim]);
      if (value === null) req.headers.delete(header);
      else req.headers.set(header, value);
    }
  },
});
