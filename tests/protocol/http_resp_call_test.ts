/**
 * PROTOCOL.md §8 cases 52–56 (HTTPRespCall §4.5 and how APISIX applies its reply §5.3), over
 * the runner's real socket.
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { ApisixConn, type Entry, latin1 } from "../support/apisix.ts";
import { asRespCall, entry, errorCode } from "../support/replies.ts";
import { sharedRunner } from "../support/runner.ts";
import { type Op, script, scriptedConfig, seenFromHeader } from "../support/scripted.ts";

const shared = sharedRunner({ config: scriptedConfig() });
const SHARED = { sanitizeOps: false, sanitizeResources: false };

/** The upstream headers of case 52. */
const UPSTREAM: Entry[] = [
  ["Content-Type", "text/plain"],
  ["Content-Length", "12"],
  ["Server", "openresty"],
  ["Connection", "close"],
];

async function route(...chain: Array<Op[] | [string, Op[]]>) {
  const runner = await shared.get();
  const conn = await ApisixConn.connect(runner.socket);
  const conf = chain.map((link): [string, string] =>
    typeof link[0] === "string" && Array.isArray(link[1])
      ? [link[0], script([], link[1] as Op[])]
      : ["scripted", script([], link as Op[])]
  );
  const token = await conn.token(conf, `route#${crypto.randomUUID()}#ext-plugin-post-resp#1`);
  return { conn, token };
}

function names(headers: Entry[]): string[] {
  return headers.map(([name]) => name.toLowerCase());
}

Deno.test({
  name: "§8.52 the plugin sees the upstream status and headers, names in their original case",
  ...SHARED,
  async fn() {
    const { conn, token } = await route([["echo"]]);
    try {
      const { reply } = await conn.respCall({ id: 9, status: 200, headers: UPSTREAM, token });
      const resp = asRespCall(reply);
      const seen = seenFromHeader(entry(resp.headers, "x-echo"));
      equal(seen.id, 9);
      equal(seen.status, 200);
      deepEqual(seen.rawHeaders, UPSTREAM);
      deepEqual(seen.headers["content-type"], ["text/plain"]);
      deepEqual(seen.headers["server"], ["openresty"]);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name:
    "§8.53 no changes: Frame(4, {id 9}) with the upstream headers minus Content-Length and hop-by-hop",
  ...SHARED,
  async fn() {
    const passive = await route([["var", "uri"]]);
    const empty = await route();
    try {
      const upstream: Entry[] = [
        ...UPSTREAM,
        ["Transfer-Encoding", "chunked"],
        ["Keep-Alive", "timeout=5"],
        ["Proxy-Connection", "x"],
        ["Set-Cookie", "a=1"],
        ["Set-Cookie", "b=2"],
        ["X-Bin", "\xff\xfe"],
      ];
      for (const { conn, token } of [passive, empty]) {
        const { reply } = await conn.respCall(
          { id: 9, status: 200, headers: upstream, token },
          () => "/p",
        );
        const resp = asRespCall(reply);
        equal(resp.id, 9);
        ok(resp.status === 0 || resp.status === 200, `status ${resp.status}`);
        equal(resp.body, null);
        deepEqual(resp.headers, [
          ["Content-Type", "text/plain"],
          ["Server", "openresty"],
          ["Set-Cookie", "a=1"],
          ["Set-Cookie", "b=2"],
          ["X-Bin", "\xff\xfe"],
        ]);
      }
    } finally {
      passive.conn.close();
      empty.conn.close();
    }
  },
});

Deno.test({
  name: "§8.54 a plugin that sets status 304 only: Resp.status 304, no body, headers kept",
  ...SHARED,
  async fn() {
    const { conn, token } = await route([["status", 304]]);
    try {
      const { reply } = await conn.respCall({ id: 2, status: 200, headers: UPSTREAM, token });
      const resp = asRespCall(reply);
      equal(resp.status, 304);
      equal(resp.body, null);
      deepEqual(names(resp.headers), ["content-type", "server"]);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: '§8.55 a replaced body "cat": Resp.body, Content-Type kept, no stale Content-Length',
  ...SHARED,
  async fn() {
    const { conn, token } = await route([["body", "cat"]]);
    try {
      const { reply } = await conn.respCall({ id: 3, status: 200, headers: UPSTREAM, token });
      const resp = asRespCall(reply);
      equal(latin1(resp.body!), "cat");
      equal(entry(resp.headers, "content-type"), "text/plain");
      equal(entry(resp.headers, "content-length"), undefined);
      equal(entry(resp.headers, "connection"), undefined);
      ok(resp.status === 0 || resp.status === 200);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.56 x-same: one and x-same: two are two entries, in order, beside the other headers",
  ...SHARED,
  async fn() {
    const { conn, token } = await route([["append", "x-same", "one"], ["append", "x-same", "two"]]);
    try {
      const { reply } = await conn.respCall({ id: 4, status: 201, headers: UPSTREAM, token });
      const resp = asRespCall(reply);
      deepEqual(resp.headers.filter(([name]) => name.toLowerCase() === "x-same"), [
        ["x-same", "one"],
        ["x-same", "two"],
      ]);
      // The full list: upstream headers the plugin did not touch are still there.
      deepEqual(names(resp.headers).sort(), ["content-type", "server", "x-same", "x-same"]);
      ok(resp.status === 0 || resp.status === 201);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.52-56 responseFilter chain: each plugin sees the status, headers and body before it",
  ...SHARED,
  async fn() {
    const { conn, token } = await route(
      [["status", 202], ["set", "x-first", "1"], ["delete", "server"], ["body", "new body"]],
      ["scripted-b", [["respBody"], ["echo"]]],
    );
    try {
      const { reply, asks } = await conn.respCall({ id: 5, status: 200, headers: UPSTREAM, token });
      deepEqual(asks, []);
      const resp = asRespCall(reply);
      equal(resp.status, 202);
      equal(latin1(resp.body!), "new body");
      const seen = seenFromHeader(entry(resp.headers, "x-echo"));
      equal(seen.status, 202);
      deepEqual(seen.headers["x-first"], ["1"]);
      equal(seen.headers["server"], undefined);
      deepEqual(seen.results.map((r) => "latin1" in r ? r.latin1 : null), ["new body"]);
      equal(entry(resp.headers, "server"), undefined);
      equal(entry(resp.headers, "content-length"), undefined);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.52-56 a responseFilter that throws gets Frame(0, SERVICE_UNAVAILABLE)",
  ...SHARED,
  async fn() {
    const { conn, token } = await route([["throw", "upstream broke me"]]);
    try {
      const { reply } = await conn.respCall({ id: 6, status: 200, headers: UPSTREAM, token });
      equal(errorCode(reply), 1);
      const unknown = await conn.respCall({ id: 6, status: 200, token: (token + 99) >>> 0 });
      equal(errorCode(unknown.reply), 2);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.5 after the cases above, SIGTERM ends the runner cleanly within 1 s",
  ...SHARED,
  async fn() {
    await shared.get(); // started already, unless a filter skipped every case above
    const stopped = await shared.stop();
    equal(stopped?.status.code, 0);
  },
});
