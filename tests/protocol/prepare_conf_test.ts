/**
 * PROTOCOL.md §8 cases 21–27 (PrepareConf §4.2 and the conf-token cache §6.3), over the
 * runner's real socket.
 *
 * @module
 */
import { equal, notEqual, ok } from "node:assert/strict";
import { ApisixConn } from "../support/apisix.ts";
import { asNone, asRewrite, asStop, errorCode } from "../support/replies.ts";
import { type RunningRunner, sharedRunner, startRunner } from "../support/runner.ts";
import { routeKey, script, scriptedConfig } from "../support/scripted.ts";

const shared = sharedRunner({ config: scriptedConfig() });
const SHARED = { sanitizeOps: false, sanitizeResources: false };

async function connect(): Promise<ApisixConn> {
  return await ApisixConn.connect((await shared.get()).socket);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Lines logged so far that contain every one of `parts`. */
function linesWith(runner: RunningRunner, ...parts: string[]): string[] {
  return runner.lines.filter((line) => parts.every((part) => line.includes(part)));
}

/**
 * Waits until every line logged before now has reached the test: logs a marker (a PrepareConf
 * naming an unknown plugin) and waits for it; stderr keeps order.
 */
async function flushLog(runner: RunningRunner, conn: ApisixConn): Promise<void> {
  const marker = `marker-${crypto.randomUUID()}`;
  await conn.token([[marker, "{}"]]);
  await runner.waitForLine(new RegExp(marker));
}

Deno.test({
  name: "§8.21-22 PrepareConf issues a non-zero token and the same token for the same key",
  ...SHARED,
  async fn() {
    const conn = await connect();
    try {
      const key = "route#1#ext-plugin-pre-req#5";
      const conf: Array<[string, string]> = [["foo", "bar"], ["cat", "dog"]];
      const first = await conn.prepare(conf, key);
      if (first.rpc !== 1) throw new Error(`expected a token, got ${JSON.stringify(first)}`);
      notEqual(first.token, 0);
      equal(conn.received.at(-1)!.type, 1);
      equal(await conn.token(conf, key), first.token);
      // Also from another connection (another APISIX worker).
      const other = await connect();
      equal(await other.token(conf, key), first.token);
      other.close();
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.22 concurrent PrepareConfs of one key on several connections get one token",
  ...SHARED,
  async fn() {
    const conns = await Promise.all(Array.from({ length: 4 }, connect));
    try {
      const key = routeKey();
      const conf: Array<[string, string]> = [["scripted", script([["set", "x-k", "1"]])]];
      const tokens = await Promise.all(conns.map((conn) => conn.token(conf, key)));
      equal(new Set(tokens).size, 1);
      asRewrite((await conns[0]!.reqCall({ token: tokens[0]! })).reply);
    } finally {
      for (const conn of conns) conn.close();
    }
  },
});

Deno.test({
  name: "§8.23 a different key with an identical conf gets a different token",
  ...SHARED,
  async fn() {
    const conn = await connect();
    try {
      const conf: Array<[string, string]> = [["scripted", script([["set", "x-a", "1"]])]];
      const a = await conn.token(conf, "route#1#ext-plugin-pre-req#1");
      const b = await conn.token(conf, "route#2#ext-plugin-pre-req#1");
      const c = await conn.token(conf, "route#1#ext-plugin-post-req#1");
      equal(new Set([a, b, c]).size, 3);
      for (const token of [a, b, c]) {
        asRewrite((await conn.reqCall({ token })).reply);
      }
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.24 PrepareConf without a conf vector gets a valid token; calls with it reply NONE",
  ...SHARED,
  async fn() {
    const conn = await connect();
    try {
      const token = await conn.token(null, routeKey());
      notEqual(token, 0);
      asNone((await conn.reqCall({ id: 4, token })).reply);
      const resp = await conn.respCall({ id: 4, status: 200, token, headers: [["Server", "x"]] });
      equal(resp.reply.rpc, 4);
      // Without a key (APISIX before 2.9) every PrepareConf gets a fresh, valid token.
      const noKey = async () => {
        const reply = await conn.prepare(null);
        if (reply.rpc !== 1) throw new Error(`expected a token, got ${JSON.stringify(reply)}`);
        return reply.token;
      };
      const x = await noKey();
      const y = await noKey();
      notEqual(x, y);
      asNone((await conn.reqCall({ token: x })).reply);
      asNone((await conn.reqCall({ token: y })).reply);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.25 an unknown plugin gets a token, is skipped, and is logged once with key and name",
  ...SHARED,
  async fn() {
    const runner = await shared.get();
    const conn = await connect();
    try {
      const key = routeKey();
      const name = `nosuch-${crypto.randomUUID().slice(0, 8)}`;
      const conf: Array<[string, string]> = [
        [name, "{}"],
        ["scripted", script([["respBody", "ran"]])],
      ];
      const token = await conn.token(conf, key);
      equal(await conn.token(conf, key), token);
      equal((asStop((await conn.reqCall({ token })).reply).body ?? []).length, 3);
      await flushLog(runner, conn);
      const lines = linesWith(runner, key, name);
      equal(lines.length, 1, lines.join("\n"));
      ok(/level=warning/.test(lines[0]!), lines[0]);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.25 a conf the plugin rejects (invalid JSON, parseConf throws) is skipped and logged",
  ...SHARED,
  async fn() {
    const runner = await shared.get();
    const conn = await connect();
    try {
      for (const raw of ["{not json", JSON.stringify({ reject: "conf says no" })]) {
        const key = routeKey();
        const conf: Array<[string, string]> = [
          ["scripted", raw],
          ["scripted-b", script([["set", "x-b", "1"]])],
        ];
        const token = await conn.token(conf, key);
        equal(await conn.token(conf, key), token);
        const rewrite = asRewrite((await conn.reqCall({ token })).reply);
        equal(rewrite.headers.length, 1);
        await flushLog(runner, conn);
        const lines = linesWith(runner, key, "logger=a6.plugin.scripted", "conf rejected");
        equal(lines.length, 1, runner.lines.join("\n"));
      }
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.26 the first token of a fresh process is not predictable",
  ...SHARED,
  async fn() {
    const runners = await Promise.all([startRunner(), startRunner()]);
    try {
      const tokens = await Promise.all(runners.map(async (runner) => {
        const conn = await ApisixConn.connect(runner.socket);
        try {
          return await conn.token(null, "route#1#ext-plugin-pre-req#1");
        } finally {
          conn.close();
        }
      }));
      notEqual(tokens[0], tokens[1]);
      ok(tokens.every((token) => token !== 0));
    } finally {
      await Promise.all(runners.map((runner) => runner.stop()));
    }
  },
});

// With APISIX_CONF_EXPIRE_TIME=2 a token lives 2.4 s after its last use. Each step below
// measures what the runner can have seen: a call's "elapsed since last use" at the runner is
// at most (reply received − previous request sent) and at least (request sent − previous reply
// received). A step that cannot prove its point on a stalled machine is repeated.
const TTL_MS = 2400;

Deno.test({
  name: "§8.27 §8.22 a token lives ≥ 1.2 × APISIX_CONF_EXPIRE_TIME after its last use, sliding",
  async fn() {
    const runner = await startRunner({
      config: scriptedConfig(),
      env: { APISIX_CONF_EXPIRE_TIME: "2" },
    });
    const conf: Array<[string, string]> = [["scripted", script([["set", "x-a", "1"]])]];
    try {
      /** Calls at `after` ms since `since`; resolves to the reply and the runner's bounds. */
      const callAt = async (conn: ApisixConn, token: number, since: number, after: number) => {
        await sleep(Math.max(0, since + after - performance.now()));
        const sent = performance.now();
        const { reply } = await conn.reqCall({ token });
        return { reply, sent, received: performance.now() };
      };

      // Sliding by use: valid 2.3 s after issue, then 2.3 s after that use (4.6 s after issue).
      const byUse = async () => {
        const conn = await ApisixConn.connect(runner.socket);
        try {
          for (let attempt = 0;; attempt++) {
            const issued = performance.now();
            const token = await conn.token(conf, routeKey());
            const got = performance.now();
            const first = await callAt(conn, token, issued, 2300);
            const second = await callAt(conn, token, first.sent, 2300);
            const provable = first.received - issued < TTL_MS &&
              second.received - first.sent < TTL_MS;
            if (!provable && attempt < 3) continue;
            asRewrite(first.reply);
            asRewrite(second.reply);
            ok(second.sent - got > TTL_MS, "the second use came after the unrefreshed lifetime");
            return;
          }
        } finally {
          conn.close();
        }
      };

      // Sliding by PrepareConf of the same key: same token, valid 2.3 s after that.
      const byPrepare = async () => {
        const conn = await ApisixConn.connect(runner.socket);
        try {
          for (let attempt = 0;; attempt++) {
            const key = routeKey();
            const issued = performance.now();
            const token = await conn.token(conf, key);
            await sleep(Math.max(0, issued + 2000 - performance.now()));
            const again = performance.now();
            const same = await conn.token(conf, key);
            const second = await callAt(conn, token, again, 2300);
            if (second.received - again >= TTL_MS && attempt < 3) continue;
            equal(same, token);
            asRewrite(second.reply);
            return;
          }
        } finally {
          conn.close();
        }
      };

      // Unknown after ~3 s of disuse; a new PrepareConf of the key gets a working token.
      const expires = async () => {
        const conn = await ApisixConn.connect(runner.socket);
        try {
          const key = routeKey();
          const token = await conn.token(conf, key);
          const got = performance.now();
          const late = await callAt(conn, token, got, 3000);
          ok(late.sent - got > TTL_MS);
          equal(errorCode(late.reply), 2);
          const fresh = await conn.token(conf, key);
          notEqual(fresh, token);
          asRewrite((await conn.reqCall({ token: fresh })).reply);
        } finally {
          conn.close();
        }
      };

      await Promise.all([byUse(), byPrepare(), expires()]);
    } finally {
      await runner.stop();
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
