/**
 * The built-in `"echo"` upstream of the local gateway: it answers with what an upstream would
 * have received after the plugins ran (method, path and query, headers, body), so a plugin
 * author sees the effect of a Rewrite with nothing but curl.
 *
 * @module
 */
import { decodeLatin1 } from "../api/bytes.ts";
import { type RequestState, upstreamTarget } from "./request_state.ts";

/** What the echo upstream answers, as JSON. */
export interface Echo {
  method: string;
  /** Path and query as sent upstream. */
  uri: string;
  /** Headers as `name: value` lines, one per value. */
  headers: string[];
  /** The body as a Latin-1 string (bytes one to one), or null. */
  body: string | null;
}

/** Answers the request the way an upstream would see it. */
export function echoUpstream(state: RequestState): Response {
  const echo: Echo = {
    method: state.method,
    uri: upstreamTarget(state),
    headers: state.headers.map(([name, value]) => `${name}: ${value}`),
    body: state.body === null ? null : decodeLatin1(state.body),
  };
  return new Response(JSON.stringify(echo, null, 2) + "\n", {
    headers: { "content-type": "application/json", server: "a6-gateway-echo" },
  });
}
