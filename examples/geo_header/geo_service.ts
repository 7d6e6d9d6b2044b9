/**
 * A stand-in geolocation service for trying and testing the `geo-header` example:
 * `GET /country?ip=<address>` answers a country code as plain text.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1:8081 examples/geo_header/geo_service.ts 8081
 * ```
 *
 * @module
 */

/** Country codes of a few addresses; every other address is `"ZZ"` (unknown). */
export const COUNTRIES: Readonly<Record<string, string>> = {
  "127.0.0.1": "LO",
  "::1": "LO",
  "192.0.2.1": "NL",
  "2001:db8::1": "SE",
};

/** Starts the service on `127.0.0.1:port` (0 picks a free port); it counts the lookups. */
export function serveGeo(port = 0): { server: Deno.HttpServer; port: number; lookups: string[] } {
  const lookups: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, (request) => {
    const url = new URL(request.url);
    if (url.pathname !== "/country") return new Response("not found", { status: 404 });
    const ip = url.searchParams.get("ip") ?? "";
    lookups.push(ip);
    return new Response(`${COUNTRIES[ip] ?? "ZZ"}\n`);
  });
  return { server, port: server.addr.port, lookups };
}

if (import.meta.main) {
  const { port } = serveGeo(Number(Deno.args[0] ?? 8081));
  console.log(`geo service on http://127.0.0.1:${port}/country`);
}
