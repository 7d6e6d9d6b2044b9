import { deepEqual, equal, throws } from "node:assert/strict";
import { matchRoute, parseRoutes, RoutesError } from "./routes.ts";

const routes = parseRoutes({
  routes: [
    {
      uri: "/api/*",
      upstream: "http://127.0.0.1:1",
      plugins: { "ext-plugin-pre-req": { conf: [{ name: "say", value: { body: "x" } }] } },
    },
    { id: "exact", uri: "/api/v1", methods: ["GET"], upstream: "echo" },
    { id: 7, uri: "/api/v1/*" },
  ],
}, "routes.json");

Deno.test("routes: ids, prefixes, conf values as JSON strings", () => {
  equal(routes[0]!.id, "1");
  equal(routes[0]!.prefix, true);
  deepEqual(routes[0]!.plugins["ext-plugin-pre-req"], {
    conf: [["say", '{"body":"x"}']],
    allowDegradation: false,
  });
  equal(routes[2]!.id, "7");
});

Deno.test("matching: exact first, then the longest prefix; methods filter", () => {
  equal(matchRoute(routes, "/api/v1", "GET")!.id, "exact");
  equal(matchRoute(routes, "/api/v1", "POST")!.id, "1");
  equal(matchRoute(routes, "/api/v1/users", "GET")!.id, "7");
  equal(matchRoute(routes, "/other", "GET"), null);
});

Deno.test("routes: mistakes name the file, the key and what was expected", () => {
  const cases: Array<[unknown, RegExp]> = [
    [{}, /routes\.json: routes: expected a list of routes/],
    [
      { routes: [{ uri: "/a", upstream: "ftp://x" }] },
      /routes\[0\]\.upstream: expected an http\(s\) URL or "echo", got "ftp:\/\/x"/,
    ],
    [
      { routes: [{ uri: "/a", plugins: { "ext-plugin-pre": {} } }] },
      /routes\[0\]\.plugins\.ext-plugin-pre: expected one of the keys ext-plugin-pre-req/,
    ],
    [{
      routes: [{
        uri: "/a",
        plugins: { "ext-plugin-pre-req": { conf: [{ name: "", value: 1 }] } },
      }],
    }, /conf\[0\]\.name: expected a plugin name of 1-128 characters/],
    [
      { routes: [{ uri: "/a", plugins: { "ext-plugin-pre-req": { allow_degradation: "yes" } } }] },
      /allow_degradation: expected true or false, got "yes"/,
    ],
    [
      { routes: [{ id: "x", uri: "/a" }, { id: "x", uri: "/b" }] },
      /routes\[1\]\.id: expected an id no other route has, got "x"/,
    ],
    [
      { routes: [{ uri: "/a", methods: ["get"] }] },
      /routes\[0\]\.methods: expected a list of upper-case methods/,
    ],
  ];
  for (const [value, expected] of cases) {
    throws(
      () => parseRoutes(value, "routes.json"),
      (e: unknown) => e instanceof RoutesError && expected.test((e as Error).message),
    );
  }
});
