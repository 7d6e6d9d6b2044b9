/**
 * The bundled plugins through the real runner: each in its own sandbox process, driven over the
 * Unix socket by an APISIX-like client, as a route would use them.
 */
import { deepEqual, equal, match } from "node:assert/strict";
import { ApisixConn, type Ask, type Entry, latin1, type Reply } from "../support/apisix.ts";
import { type RunningRunner, startRunner } from "../support/runner.ts";

function expectStop(reply: Reply) {
  if (reply.rpc !== 2 || reply.action !== "stop") {
    throw new Error(`expected a stop, got ${JSON.stringify(reply)}`);
  }
  return reply;
}

function expectRewrite(reply: Reply) {
  if (reply.rpc !== 2 || reply.action !== "rewrite") {
    throw new Error(`expected a rewrite, got ${JSON.stringify(reply)}`);
  }
  return reply;
}

function expectResp(reply: Reply) {
  if (reply.rpc !== 4) {
    throw new Error(`expected an HTTPRespCall reply, got ${JSON.stringify(reply)}`);
  }
  return reply;
}

async function sha256(text: string): Promise<string> {
  const bytes = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return btoa(String.fromCharCode(...new Uint8Array(bytes)));
}

Deno.test("bundled plugins through the runner and their sandboxes", async (t) => {
  const runner: RunningRunner = await startRunner();
  const conn = await ApisixConn.connect(runner.socket);
  const conf = (name: string, value: unknown): Entry => [name, JSON.stringify(value)];
  try {
    await t.step("say answers with status, headers and body", async () => {
      const token = await conn.token([
        conf("say", { body: "hello", status: 201, headers: { "X-A": ["1", "2"] } }),
      ]);
      const { reply, asks } = await conn.reqCall({ id: 5, token });
      const stop = expectStop(reply);
      equal(stop.id, 5);
      equal(stop.status, 201);
      deepEqual(stop.headers, [["x-a", "1"], ["x-a", "2"]]);
      equal(latin1(stop.body!), "hello");
      deepEqual(asks, []);
    });

    await t.step(
      "a bad conf is rejected with a log line naming plugin, route and reason",
      async () => {
        const key = "route#bad#ext-plugin-pre-req#1";
        const token = await conn.token([conf("say", { body: "x", status: 7 })], key);
        const line = await runner.waitForLine(/conf rejected/);
        match(line, /logger=a6\.plugin\.say /);
        match(line, /route#bad#ext-plugin-pre-req#1/);
        match(line, /status: expected an integer from 100 to 599, got 7/);
        const { reply } = await conn.reqCall({ token });
        deepEqual(reply, { rpc: 2, id: 0, action: "none" });
      },
    );

    await t.step("request-rewrite fetches only the variables it uses, once each", async () => {
      const token = await conn.token([
        conf("request-rewrite", {
          path: "/v2$uri",
          host: "backend",
          headers: {
            add: { "x-client": "$remote_addr" },
            set: { "x-route": "${route_id ?? none}", "x-again": "$remote_addr" },
            remove: ["cookie"],
          },
          args: { set: { tag: ["a", "b"] }, remove: ["debug"] },
          response_headers: { "x-served-by": "deno" },
        }),
      ]);
      const vars: Record<string, string> = { uri: "/items", remote_addr: "10.0.0.9" };
      const { reply, asks } = await conn.reqCall(
        {
          token,
          path: "/items",
          args: [["debug", "1"], ["keep", "1"]],
          headers: [["cookie", "s=1"], ["host", "api"]],
        },
        (ask) => ask.kind === "var" ? vars[ask.name] ?? null : null,
      );
      const rewrite = expectRewrite(reply);
      equal(rewrite.path, "/v2/items");
      deepEqual(rewrite.headers, [
        ["host", "backend"],
        ["x-client", "10.0.0.9"],
        ["x-route", "none"],
        ["x-again", "10.0.0.9"],
        ["cookie", null],
      ]);
      deepEqual(rewrite.args, [["tag", "a"], ["tag", "b"], ["debug", null]]);
      deepEqual(rewrite.respHeaders, [["x-served-by", "deno"]]);
      deepEqual(
        asks,
        [
          { kind: "var", name: "uri" },
          { kind: "var", name: "remote_addr" },
          { kind: "var", name: "route_id" },
        ] satisfies Ask[],
      );
    });

    await t.step("request-body-rewrite replaces the body without fetching it", async () => {
      const token = await conn.token([conf("request-body-rewrite", { new_body: "new body" })]);
      const { reply, asks } = await conn.reqCall({ token, method: 2 });
      equal(latin1(expectRewrite(reply).body!), "new body");
      deepEqual(asks, []);
    });

    await t.step("content-digest digests the body and enforces a required digest", async () => {
      const token = await conn.token([conf("content-digest", { require: true })]);
      const body = '{"hello": "world"}';
      const good = await conn.reqCall(
        { token, method: 2, headers: [["content-digest", `sha-256=:${await sha256(body)}:`]] },
        () => body,
      );
      deepEqual(good.reply, { rpc: 2, id: 0, action: "none" });
      deepEqual(good.asks, [{ kind: "reqBody" }]);
      const bad = await conn.reqCall(
        { token, method: 2, headers: [["content-digest", `sha-256=:${await sha256("other")}:`]] },
        () => body,
      );
      const stop = expectStop(bad.reply);
      equal(stop.status, 400);
      equal(latin1(stop.body!), "Content-Digest sha-256 does not match the request body\n");

      const plain = await conn.token([conf("content-digest", {})]);
      const added = await conn.reqCall({ token: plain, method: 2 }, () => body);
      deepEqual(expectRewrite(added.reply).headers, [
        ["content-digest", "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"],
      ]);
    });

    await t.step("a chain: the digest covers the body the previous plugin set", async () => {
      const token = await conn.token([
        conf("request-body-rewrite", { new_body: "abc" }),
        conf("content-digest", {}),
      ]);
      const { reply, asks } = await conn.reqCall({ token, method: 2 }, () => "original");
      const rewrite = expectRewrite(reply);
      equal(latin1(rewrite.body!), "abc");
      deepEqual(rewrite.headers, [["content-digest", `sha-256=:${await sha256("abc")}:`]]);
      deepEqual(asks, []);
    });

    await t.step("response-rewrite filters the upstream body, fetched once", async () => {
      const token = await conn.token(
        [conf("response-rewrite", {
          status: 202,
          headers: { "x-server": "deno" },
          filters: [{ regex: "(?i)world", scope: "global", replace: "APISIX" }],
        })],
        "route#rr#ext-plugin-post-resp#1",
      );
      const { reply, asks } = await conn.respCall(
        {
          id: 9,
          status: 200,
          token,
          headers: [["Content-Type", "text/plain"], ["Content-Length", "17"], [
            "Connection",
            "close",
          ]],
        },
        (ask) => ask.kind === "respBody" ? "hello World world" : null,
      );
      const resp = expectResp(reply);
      equal(resp.id, 9);
      equal(resp.status, 202);
      deepEqual(resp.headers, [["Content-Type", "text/plain"], ["x-server", "deno"]]);
      equal(latin1(resp.body!), "hello APISIX APISIX");
      deepEqual(asks, [{ kind: "respBody" }]);
    });

    await t.step("limit-req rejects a request over the rate with 503", async () => {
      // 0.1 request per second: the second request comes well within 10 s of the first.
      const token = await conn.token([conf("limit-req", { rate: 0.1, burst: 0 })]);
      deepEqual((await conn.reqCall({ token })).reply, { rpc: 2, id: 0, action: "none" });
      const stop = expectStop((await conn.reqCall({ token })).reply);
      equal(stop.status, 503);
    });

    await t.step("fault-injection answers with the Go runner's conf and can delay", async () => {
      const token = await conn.token([conf("fault-injection", { http_status: 500, body: "boom" })]);
      const stop = expectStop((await conn.reqCall({ token })).reply);
      equal(stop.status, 500);
      equal(latin1(stop.body!), "boom");
      const slow = await conn.token([conf("fault-injection", { delay: 0.2 })]);
      const started = performance.now();
      deepEqual((await conn.reqCall({ token: slow })).reply, { rpc: 2, id: 0, action: "none" });
      const waited = performance.now() - started;
      equal(waited >= 195, true, `waited ${waited} ms`);
    });
  } finally {
    conn.close();
    await runner.stop();
  }
});
