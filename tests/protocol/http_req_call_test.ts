/**
 * PROTOCOL.md §8 cases 28–44 (HTTPReqCall decoding and replies, §4.3 and §5.1–5.2), driven over
 * the runner's real socket with the scripted fixture plugins.
 *
 * @module
 */
import { deepEqual, equal, notEqual, ok } from "node:assert/strict";
import { ApisixConn, bytes, latin1 } from "../support/apisix.ts";
import { asNone, asRewrite, asStop, entry, errorCode } from "../support/replies.ts";
import { sharedRunner } from "../support/runner.ts";
import {
  type Op,
  script,
  scriptedConfig,
  seenFromBody,
  seenFromHeader,
} from "../support/scripted.ts";

async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data as BufferSource));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

const shared = sharedRunner({ config: scriptedConfig() });
const SHARED = { sanitizeOps: false, sanitizeResources: false };

/** A connection to the shared runner and a token for `ops` run by `scripted`. */
async function route(...chain: Array<Op[] | [string, Op[]]>) {
  const runner = await shared.get();
  const conn = await ApisixConn.connect(runner.socket);
  const conf = chain.map((link): [string, string] =>
    typeof link[0] === "string" && Array.isArray(link[1])
      ? [link[0], script(link[1] as Op[])]
      : ["scripted", script(link as Op[])]
  );
  const token = await conn.token(conf);
  return { conn, token, runner };
}

Deno.test({
  name: "§8.28 an unknown conf token is answered with CONF_TOKEN_NOT_FOUND (type 0, code 2)",
  ...SHARED,
  async fn() {
    const { conn, token } = await route([["echo"]]);
    try {
      const unknown = (token + 0x4000_0000) >>> 0 || 1;
      const { reply } = await conn.reqCall({ id: 1, token: unknown });
      equal(errorCode(reply), 2);
      equal(conn.received.at(-1)!.type, 0);
      // The connection stays usable.
      asStop((await conn.reqCall({ id: 2, token })).reply);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.29 method: absent is GET, 3 is PUT, 14 is TRACE",
  ...SHARED,
  async fn() {
    const { conn, token } = await route([["echo"]]);
    try {
      const seen = async (method?: number) =>
        seenFromBody(
          asStop((await conn.reqCall(method === undefined ? { token } : { token, method })).reply)
            .body,
        ).method;
      equal(await seen(undefined), "GET");
      equal(await seen(3), "PUT");
      equal(await seen(14), "TRACE");
      equal(await seen(13), "PATCH");
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.30 src_ip: 4 bytes are IPv4, 16 bytes are IPv6 (::1)",
  ...SHARED,
  async fn() {
    const { conn, token } = await route([["echo"]]);
    try {
      const seen = async (srcIp: number[]) =>
        seenFromBody(asStop((await conn.reqCall({ token, srcIp })).reply).body).srcIp;
      equal(await seen([127, 0, 0, 1]), "127.0.0.1");
      equal(await seen([...new Array(15).fill(0), 1]), "::1");
      equal(
        await seen([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x2a]),
        "2001:db8::2a",
      );
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: '§8.31 args xx=y, xx=z, y="", z (no value) stay distinguishable',
  ...SHARED,
  async fn() {
    const { conn, token } = await route([["echo"]]);
    try {
      const { reply } = await conn.reqCall({
        token,
        path: "/hello",
        args: [["xx", "y"], ["xx", "z"], ["y", ""], ["z", null]],
      });
      deepEqual(seenFromBody(asStop(reply).body).args, [
        ["xx", "y"],
        ["xx", "z"],
        ["y", ""],
        ["z", null],
      ]);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.32 repeated headers x-req: foo and x-req: bar are both seen, in order",
  ...SHARED,
  async fn() {
    const { conn, token } = await route([["echo"]]);
    try {
      const { reply } = await conn.reqCall({
        token,
        headers: [["x-req", "foo"], ["x-resp", "cat"], ["x-req", "bar"], ["host", "localhost"]],
      });
      const seen = seenFromBody(asStop(reply).body);
      deepEqual(seen.headers["x-req"], ["foo", "bar"]);
      deepEqual(seen.headers["x-resp"], ["cat"]);
      deepEqual(seen.headers["host"], ["localhost"]);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.33 a header value with bytes 0xFF 0xFE, echoed back in a Rewrite, is byte-identical",
  ...SHARED,
  async fn() {
    const { conn, token } = await route([["copy", "x-bin", "x-copy"]]);
    try {
      const value = "\xff\xfe a \x80\xc3(";
      const { reply } = await conn.reqCall({ token, headers: [["x-bin", value]] });
      deepEqual(asRewrite(reply).headers, [["x-copy", value]]);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.34 the reply carries the request id (123456); an absent id gives 0",
  ...SHARED,
  async fn() {
    const { conn, token } = await route([["echo"]]);
    const none = await route([]);
    try {
      const stop = asStop((await conn.reqCall({ id: 123456, token })).reply);
      equal(stop.id, 123456);
      equal(seenFromBody(stop.body).id, 123456);
      equal(asStop((await conn.reqCall({ token })).reply).id, 0);
      equal(
        asNone((await none.conn.reqCall({ id: 0xffff_ffff, token: none.token })).reply).id,
        0xffff_ffff,
      );
      equal(asNone((await none.conn.reqCall({ token: none.token })).reply).id, 0);
    } finally {
      conn.close();
      none.conn.close();
    }
  },
});

Deno.test({
  name: "§8.35 no changes: Frame(2) with action NONE (the 12-byte empty table when id is 0)",
  ...SHARED,
  async fn() {
    // A plugin that reads everything and changes nothing, and a route without plugins.
    const reader = await route([["var", "uri"], ["reqBody"], ["sleep", 1]]);
    const empty = await route();
    try {
      const { reply, asks } = await reader.conn.reqCall(
        { token: reader.token, headers: [["a", "b"]], args: [["c", "d"]] },
        () => "x",
      );
      asNone(reply);
      equal(asks.length, 2);
      asNone((await empty.conn.reqCall({ token: empty.token })).reply);
      deepEqual(reader.conn.received.at(-1), { type: 2, length: 12 });
      deepEqual(empty.conn.received.at(-1), { type: 2, length: 12 });
    } finally {
      reader.conn.close();
      empty.conn.close();
    }
  },
});

Deno.test({
  name: '§8.36 Stop: status 403, headers X-A: 1 then X-A: 2 in order, body "no"',
  ...SHARED,
  async fn() {
    const { conn, token } = await route([
      ["respHeader", "X-A", "1"],
      ["respHeader", "X-B", "b"],
      ["respHeader", "X-A", "2"],
      ["status", 403],
      ["respBody", "no"],
    ]);
    try {
      const stop = asStop((await conn.reqCall({ id: 3, token })).reply);
      equal(stop.status, 403);
      deepEqual(
        stop.headers.filter(([name]) => name.toLowerCase() === "x-a"),
        [["x-a", "1"], ["x-a", "2"]],
      );
      equal(entry(stop.headers, "x-b"), "b");
      ok(stop.headers.every(([, value]) => value !== null), "no value-less Stop header");
      equal(latin1(stop.body!), "no");
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.37 a Stop without an explicit status has status 200 (or absent)",
  ...SHARED,
  async fn() {
    const { conn, token } = await route([["respBody", "hello"]]);
    try {
      const stop = asStop((await conn.reqCall({ token })).reply);
      ok(stop.status === 200 || stop.status === 0, `status ${stop.status}`);
      equal(latin1(stop.body!), "hello");
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.38 a binary Stop body with 0x00 and 0x80 bytes arrives byte-identical",
  ...SHARED,
  async fn() {
    const body = Uint8Array.from({ length: 512 }, (_, i) => (i * 131) & 0xff);
    body.set([0x00, 0x80, 0xff, 0x00], 0);
    const { conn, token } = await route([["respBodyB64", btoa(latin1(body))]]);
    try {
      const stop = asStop((await conn.reqCall({ token })).reply);
      deepEqual(stop.body, body);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.39 a deleted request header is a value-less entry; a set one carries its value",
  ...SHARED,
  async fn() {
    const { conn, token } = await route([["delete", "x-delete"], ["set", "x-change", "bar"]]);
    try {
      const { reply } = await conn.reqCall({
        token,
        headers: [["x-delete", "1"], ["x-change", "foo"], ["x-keep", "k"]],
      });
      const rewrite = asRewrite(reply);
      deepEqual(
        [...rewrite.headers].sort(),
        [["x-change", "bar"], ["x-delete", null]],
      );
      equal(rewrite.path, null);
      deepEqual(rewrite.args, []);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.39 repeated values of one request header go as one set entry (APISIX sets, never adds)",
  ...SHARED,
  async fn() {
    const { conn, token } = await route([["append", "x-m", "1"], ["append", "x-m", "2"]]);
    try {
      const rewrite = asRewrite((await conn.reqCall({ token, headers: [["x-m", "0"]] })).reply);
      deepEqual(rewrite.headers, [["x-m", "0, 1, 2"]]);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.40 a new path goes decoded and without '?'; its query becomes args",
  ...SHARED,
  async fn() {
    const { conn, token } = await route([["path", "/new path"], ["setArg", "a", "1"]]);
    const split = await route([["path", "/p?a=2&b=x%20y"]]);
    try {
      const rewrite = asRewrite((await conn.reqCall({ token, path: "/old" })).reply);
      equal(rewrite.path, "/new path");
      deepEqual(rewrite.args, [["a", "1"]]);
      const other = asRewrite((await split.conn.reqCall({ token: split.token, path: "/o" })).reply);
      equal(other.path, "/p");
      ok(!other.path!.includes("?"));
      deepEqual([...other.args].sort(), [["a", "2"], ["b", "x y"]]);
    } finally {
      conn.close();
      split.conn.close();
    }
  },
});

Deno.test({
  name:
    "§8.41 args: a delete is value-less, a set replaces then appends, untouched names are absent",
  ...SHARED,
  async fn() {
    const { conn, token } = await route([
      ["deleteArg", "d"],
      ["setArg", "a", "foo"],
      ["appendArg", "a", "bar"],
    ]);
    try {
      const { reply } = await conn.reqCall({
        token,
        args: [["c", "foo"], ["d", "bar"], ["a", "old"]],
      });
      deepEqual(asRewrite(reply).args, [["d", null], ["a", "foo"], ["a", "bar"]]);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.42 a response header added without stopping goes in Rewrite.resp_headers, in order",
  ...SHARED,
  async fn() {
    const { conn, token } = await route([
      ["respHeader", "x-resp", "1"],
      ["respHeader", "x-resp", "2"],
    ]);
    try {
      const rewrite = asRewrite((await conn.reqCall({ token })).reply);
      deepEqual(rewrite.respHeaders, [["x-resp", "1"], ["x-resp", "2"]]);
      deepEqual(rewrite.headers, []);
      equal(rewrite.path, null);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name:
    "§8.42 response headers APISIX ignores (content-type, location…) are dropped with a warning",
  ...SHARED,
  async fn() {
    const marker = `x-marker-${crypto.randomUUID().slice(0, 8)}`;
    const { conn, token, runner } = await route([
      ["respHeader", "content-type", "text/html"],
      ["respHeader", "location", "/x"],
      ["respHeader", marker, "1"],
    ]);
    try {
      const rewrite = asRewrite((await conn.reqCall({ token })).reply);
      deepEqual(rewrite.respHeaders, [[marker, "1"]]);
      await runner.waitForLine(/dropped response header\(s\) content-type, location/);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: '§8.43 a replaced request body "abc\\n" is Rewrite.body of 4 bytes',
  ...SHARED,
  async fn() {
    const { conn, token } = await route([["body", "abc\n"]]);
    try {
      const rewrite = asRewrite((await conn.reqCall({ token })).reply);
      deepEqual(rewrite.body, bytes("abc\n"));
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.43 an emptied request body is refused with a warning and never sent",
  ...SHARED,
  async fn() {
    const { conn, token, runner } = await route([["body", ""]]);
    try {
      asNone((await conn.reqCall({ token })).reply);
      await runner.waitForLine(/ignored an empty request body/);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.44 the chain runs in conf order and a Stop ends it: later plugins do not run",
  ...SHARED,
  async fn() {
    const { conn, token } = await route(
      [["set", "x-first", "1"], ["status", 401], ["respBody", "first"]],
      ["scripted-b", [["throw", "the second plugin must not run"]]],
    );
    try {
      const stop = asStop((await conn.reqCall({ token })).reply);
      equal(stop.status, 401);
      equal(latin1(stop.body!), "first");
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.44 each plugin sees the rewrites of the plugins before it (headers, path, args, body)",
  ...SHARED,
  async fn() {
    const { conn, token } = await route(
      [
        ["set", "x-first", "1"],
        ["delete", "x-gone"],
        ["append", "x-list", "b"],
        ["path", "/rewritten"],
        ["setArg", "a", "new"],
        ["deleteArg", "d"],
        ["body", "replaced"],
      ],
      ["scripted-b", [["set", "x-second", "2"], ["reqBody"], ["report", "x-seen"]]],
      [["echo"]],
    );
    try {
      const { reply, asks } = await conn.reqCall({
        token,
        path: "/orig",
        headers: [["x-gone", "g"], ["x-list", "a"]],
        args: [["a", "old"], ["d", "1"], ["k", null]],
      });
      // The body was replaced before anyone asked for it: APISIX is never asked.
      deepEqual(asks, []);
      const last = seenFromBody(asStop(reply).body);
      const second = seenFromHeader(last.headers["x-seen"]?.[0]);
      for (const seen of [second, last]) {
        equal(seen.path, "/rewritten");
        deepEqual(seen.headers["x-first"], ["1"]);
        deepEqual(seen.headers["x-list"], ["a", "b"]);
        equal(seen.headers["x-gone"], undefined);
        deepEqual([...seen.args!].sort(), [["a", "new"], ["k", null]]);
      }
      deepEqual(second.results, [{
        body: "request",
        length: 8,
        sha256: await sha256Hex(bytes("replaced")),
        latin1: "replaced",
      }]);
      deepEqual(last.headers["x-second"], ["2"]);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.44 the merged reply of a rewriting chain carries every plugin's changes",
  ...SHARED,
  async fn() {
    const { conn, token } = await route(
      [["set", "x-a", "1"], ["setArg", "p", "1"], ["respHeader", "x-r", "1"]],
      ["scripted-b", [["set", "x-b", "2"], ["path", "/two"], ["delete", "x-a"]]],
    );
    try {
      const rewrite = asRewrite((await conn.reqCall({ token, path: "/one" })).reply);
      equal(rewrite.path, "/two");
      deepEqual([...rewrite.headers].sort(), [["x-a", null], ["x-b", "2"]]);
      deepEqual(rewrite.args, [["p", "1"]]);
      deepEqual(rewrite.respHeaders, [["x-r", "1"]]);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.28-44 calls on many routes and connections keep their own tokens apart",
  ...SHARED,
  async fn() {
    const routes = await Promise.all(
      Array.from({ length: 5 }, (_, i) => route([["set", "x-route", String(i)]])),
    );
    try {
      const tokens = new Set(routes.map((r) => r.token));
      equal(tokens.size, 5);
      for (const [i, r] of routes.entries()) {
        const rewrite = asRewrite((await r.conn.reqCall({ token: r.token })).reply);
        deepEqual(rewrite.headers, [["x-route", String(i)]]);
        notEqual(r.token, 0);
      }
    } finally {
      for (const r of routes) r.conn.close();
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
