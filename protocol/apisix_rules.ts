/**
 * What the protocol's numbers mean and which header names APISIX treats specially when it
 * applies a reply (PROTOCOL.md §3, §5). One list each, shared by the runner, the plugin API, the
 * test kit, the local gateway and the bundled plugins.
 *
 * @module
 */
/**
 * The methods in the order of the protocol's `Method` enum (GET is 0, TRACE 14). The plugin
 * API's `HttpMethod` (api/types.ts) is the same union, spelled out for its readers; the type
 * checker holds the two equal where api/views.ts and the gateway convert between them.
 */
export const METHODS = [
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "MKCOL",
  "COPY",
  "MOVE",
  "OPTIONS",
  "PROPFIND",
  "PROPPATCH",
  "LOCK",
  "UNLOCK",
  "PATCH",
  "TRACE",
] as const;

/**
 * Response headers APISIX silently ignores in a Rewrite's `resp_headers`, the headers added to
 * the client response while proxying (§5.2).
 */
export const IGNORED_RESPONSE_HEADERS: ReadonlySet<string> = new Set([
  "connection",
  "content-length",
  "transfer-encoding",
  "location",
  "server",
  "www-authenticate",
  "content-encoding",
  "content-type",
  "content-location",
  "content-language",
]);

/**
 * Whether an HTTPRespCall reply leaves out a response header (lower-case `name`): hop-by-hop
 * headers, and Content-Length, which would be stale after a body change (§5.3).
 */
export function isHopByHopOrLength(name: string): boolean {
  return DROPPED_NAMES.has(name) || name.startsWith("proxy-");
}

/** The names {@linkcode isHopByHopOrLength} matches besides any `proxy-*` one. */
export const HOP_BY_HOP_AND_LENGTH: readonly string[] = [
  "connection",
  "keep-alive",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "content-length",
];
const DROPPED_NAMES = new Set(HOP_BY_HOP_AND_LENGTH);
const DROPPED_LENGTHS = new Set([...DROPPED_NAMES].map((name) => name.length));

/**
 * Whether a header name as bytes (any case) could be one {@linkcode isHopByHopOrLength} matches,
 * from its length and first byte alone: most names of a response are ruled out without making
 * a string of them.
 */
export function mayBeHopByHopOrLength(name: Uint8Array): boolean {
  return DROPPED_LENGTHS.has(name.length) || (name.length >= 6 && (name[0]! | 0x20) === 0x70);
}
