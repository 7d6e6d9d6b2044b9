/**
 * The third-party example `geo-header` through the real runner: the network access it needs
 * is denied until the operator's configuration grants it.
 */
import { deepEqual, equal, match } from "node:assert/strict";
import { ApisixConn, type Reply } from "../support/apisix.ts";
import { ROOT, startRunner } from "../support/runner.ts";
import { serveGeo } from "../../examples/geo_header/geo_service.ts";

const EXAMPLE = `${ROOT}/examples/geo_header`;

/** The example's runner.json, with the module made absolute and the grant moved to `port`. */
async function exampleConfig(port: number, grant: boolean) {
  const config = JSON.parse(await Deno.readTextFile(`${EXAMPLE}/runner.json`));
  const plugin = config.plugins["geo-header"];
  plugin.module = `${EXAMPLE}/${plugin.module}`;
  deepEqual(plugin.permissions.net, ["127.0.0.1:8081"], "the example grants one host and port");
  if (grant) plugin.permissions.net = [`127.0.0.1:${port}`];
  else delete plugin.permissions;
  return config;
}

async function lookup(socket: string, port: number): Promise<Reply> {
  const conn = await ApisixConn.connect(socket);
  try {
    const token = await conn.token([
      ["geo-header", JSON.stringify({ service: `http://127.0.0.1:${port}/country` })],
    ]);
    // 192.0.2.1
    return (await conn.reqCall({ token, srcIp: [192, 0, 2, 1] })).reply;
  } finally {
    conn.close();
  }
}

Deno.test("geo-header works with its net grant and is denied without it", async () => {
  const geo = serveGeo();
  try {
    const granted = await startRunner({ config: await exampleConfig(geo.port, true) });
    try {
      const reply = await lookup(granted.socket, geo.port);
      if (reply.rpc !== 2 || reply.action !== "rewrite") throw new Error(JSON.stringify(reply));
      deepEqual(reply.headers, [["x-country", "NL"]]);
      deepEqual(geo.lookups, ["192.0.2.1"]);
    } finally {
      await granted.stop();
    }

    const denied = await startRunner({ config: await exampleConfig(geo.port, false) });
    try {
      // SERVICE_UNAVAILABLE: APISIX answers the client 503 (failure policy "closed").
      deepEqual(await lookup(denied.socket, geo.port), { rpc: 0, code: 1 });
      const line = await denied.waitForLine(/a6\.plugin\.geo-header .*call failed/);
      match(line, /NotCapable|net access/i);
      equal(geo.lookups.length, 1, "the denied plugin never reached the service");
    } finally {
      await denied.stop();
    }
  } finally {
    await geo.server.shutdown();
  }
});
