import { deepEqual, equal, rejects } from "node:assert/strict";
import { assertRewrite, testPlugin } from "@apisix/deno-plugin-runner/testing";
import geoHeader from "./geo_header.ts";
import { serveGeo } from "./geo_service.ts";

Deno.test("geo-header sends the client's country upstream and caches it per conf", async () => {
  const geo = serveGeo();
  try {
    const plugin = await testPlugin(geoHeader, {
      service: `http://127.0.0.1:${geo.port}/country`,
      header: "x-country",
    });
    for (
      const [srcIp, country] of [["192.0.2.1", "NL"], ["2001:db8::1", "SE"], ["192.0.2.1", "NL"]]
    ) {
      const outcome = await plugin.request({ srcIp });
      assertRewrite(outcome);
      equal(outcome.upstream.headers.get("x-country"), country);
      deepEqual(outcome.asks, []);
    }
    deepEqual(geo.lookups, ["192.0.2.1", "2001:db8::1"]);
  } finally {
    await geo.server.shutdown();
  }
});

Deno.test("geo-header fails the call when the service fails", async () => {
  const geo = serveGeo();
  try {
    const wrongPath = await testPlugin(geoHeader, { service: `http://127.0.0.1:${geo.port}/nope` });
    await rejects(wrongPath.request(), /geo service answered 404/);
  } finally {
    await geo.server.shutdown();
  }
  // Nothing listens there any more.
  const gone = await testPlugin(geoHeader, {
    service: `http://127.0.0.1:${geo.port}/country`,
    timeout_ms: 200,
  });
  await rejects(gone.request());
});

Deno.test("geo-header rejects bad confs", async () => {
  await rejects(testPlugin(geoHeader, {}), /service: expected an http\(s\) URL, got undefined/);
  await rejects(
    testPlugin(geoHeader, { service: "ftp://x" }),
    /service: expected an http\(s\) URL/,
  );
  await rejects(
    testPlugin(geoHeader, { service: "http://x", header: "bad header" }),
    /header: expected a header name/,
  );
  await rejects(
    testPlugin(geoHeader, { service: "http://x", timeout_ms: 0 }),
    /timeout_ms: expected an integer from 1 to 10000/,
  );
});
