/**
 * The bounds suite: everything the runner reads from a sandbox is bounded before the work it
 * causes, by the runner, whatever the worker's own runtime does. Hostile workers hand-craft
 * patches (lists over the limits, lengths past the end, records twice, CR/LF, over 16 MiB, and
 * the largest accepted), rewrite the runtime's message writer to log past the console's limits,
 * and go over the limits through the public API alone (too many headers, too many values for a
 * 16-bit count, a body whose getter throws, questions by the ten thousand). Over a limit: that
 * call fails alone, with a log line, and nothing reaches APISIX; malformed: the sandbox is
 * killed. Through every case, bundled `say` on another route and connection keeps answering.
 *
 * @module
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import type { ApisixConn, Reply } from "../support/apisix.ts";
import {
  type Harness,
  sleep,
  startBystander,
  startHarness,
  stopBody,
  suitePlugin,
} from "./harness.ts";

const CLOSED: Reply = { rpc: 0, code: 1 };
const own = suitePlugin;

const CONFIG = {
  bundled: false,
  plugins: {
    say: {},
    hostile_patch: own("hostile_patch.ts", { timeoutMs: 20_000 }),
    public_limits: own("public_limits.ts", {
      timeoutMs: 20_000,
      maxQuestionsPerCall: 100,
      isolation: "shared",
      group: "limits",
    }),
    group_peer: own("group_peer.ts", { isolation: "shared", group: "limits" }),
    log_tamper: own("log_tamper.ts", { logLinesPerSecond: 50, logBytesPerSecond: 64 * 1024 }),
  },
};

interface Route {
  conn: ApisixConn;
  token: number;
}

async function route(h: Harness, plugin: string): Promise<Route> {
  const conn = await h.connect();
  const token = await conn.token([[plugin, "{}"]]);
  return { conn, token };
}

/** Calls until the plugin answers "alive" (after a restart, the policy answer meanwhile). */
async function alive(r: Route, body = "alive"): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const { reply } = await r.conn.reqCall({ id: 1, token: r.token });
    if (reply.rpc === 2 && reply.action === "stop") {
      equal(stopBody(reply), body);
      return;
    }
    deepEqual(reply, CLOSED);
    await sleep(50);
  }
  throw new Error("the plugin did not serve again");
}

function call(r: Route, which: string) {
  return r.conn.reqCall({ id: 7, token: r.token, headers: [["x-case", which]] }, () => "1");
}

Deno.test({
  name: "bounds suite: what a sandbox sends is bounded by the runner",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const h = await startHarness(CONFIG);
    const say = await startBystander(h);
    const routes: Route[] = [];
    const open = async (plugin: string) => {
      const r = await route(h, plugin);
      routes.push(r);
      await alive(r, plugin === "group_peer" ? "peer ok" : "alive");
      return r;
    };
    try {
      const hostile = await open("hostile_patch");

      /** A hand-made patch over a limit: that call alone fails, with a log line. */
      const refused = async (which: string, reason: RegExp) => {
        const restarts = h.supervisor("hostile_patch").restarts;
        const errors = h.counts("hostile_patch").error;
        const pending = call(hostile, which);
        await say.check();
        const { reply } = await pending;
        deepEqual(reply, CLOSED);
        const line = await h.waitForLine(reason);
        match(line, /nothing was sent to APISIX/);
        equal(h.counts("hostile_patch").error, errors + 1);
        equal(h.supervisor("hostile_patch").restarts, restarts, "no restart");
        await alive(hostile);
        await say.check();
      };

      await t.step("a patch with 65,537 request headers is refused", async () => {
        await refused("headers", /refused: its patch has more than 65536 request header values/);
      });

      await t.step("65,537 header values over two names are refused", async () => {
        await refused("values", /refused: its patch has more than 65536 request header values/);
      });

      await t.step("a response-header count of four billion is refused unread", async () => {
        await refused("responseCount", /refused: its patch has 4000000000 response headers/);
      });

      await t.step("a patch whose reply would pass 16 MiB is refused before decoding", async () => {
        await refused("bytes", /refused: its patch makes a reply of more than 16777215 bytes/);
      });

      /** A malformed hand-made patch: a protocol violation, the sandbox is killed. */
      const violation = async (which: string, reason: RegExp) => {
        const restarts = h.supervisor("hostile_patch").restarts;
        const before = h.counts("hostile_patch").violation;
        const pending = call(hostile, which);
        await say.check();
        deepEqual((await pending).reply, CLOSED);
        match(await h.waitForLine(reason), reason);
        equal(h.counts("hostile_patch").violation, before + 1);
        await alive(hostile);
        ok(h.supervisor("hostile_patch").restarts > restarts);
        await say.check();
      };

      await t.step("a value count past the end of the patch is a violation", async () => {
        await violation("truncated", /killing sandbox plugin:hostile_patch: protocol violation/);
      });

      await t.step("a length past the end of the patch is a violation", async () => {
        await violation("length", /protocol violation: needed 4294967280 bytes/);
      });

      await t.step("a record twice is a violation", async () => {
        await violation("twice", /protocol violation: patch record 3 appears twice/);
      });

      await t.step("CR/LF in a header value is a violation", async () => {
        await violation("crlf", /protocol violation: a header value contains CR\/LF/);
      });

      await t.step("the largest accepted patch is answered, while say answers", async () => {
        const pending = call(hostile, "worst");
        await say.check();
        await say.check();
        const { reply } = await pending;
        if (reply.rpc !== 2 || reply.action !== "rewrite") {
          throw new Error(`expected a rewrite, got ${JSON.stringify(reply).slice(0, 200)}`);
        }
        equal(reply.headers.length, 65_536);
        equal(reply.args.length, 65_536);
        equal(reply.respHeaders.length, 65_536);
        deepEqual(reply.headers[65_535], ["h65535", "v"]);
        await say.check();
      });

      const limits = await open("public_limits");
      const peer = await open("group_peer");

      /** Over a limit through the public API: that call fails; the shared group stays. */
      const ownError = async (which: string, reason: RegExp) => {
        const restarts = h.supervisor("public_limits").restarts;
        const pending = call(limits, which);
        await say.check();
        const { reply, asks } = await pending;
        deepEqual(reply, CLOSED);
        match(await h.waitForLine(reason), reason);
        equal(h.supervisor("public_limits").restarts, restarts, "the group was not restarted");
        await alive(peer, "peer ok");
        await alive(limits);
        await say.check();
        return asks;
      };

      await t.step("70,000 headers set through the API: the plugin's error", async () => {
        await ownError("headers", /public_limits.*more than 65536 request headers in one patch/);
      });

      await t.step("70,000 values for one header: the count refuses, never wraps", async () => {
        await ownError("values", /public_limits.*x-many\\?" has 70000 values, more than 65535/);
      });

      await t.step("a body whose getter throws fails its call, not the group", async () => {
        await ownError("body", /public_limits.*call failed: Error: a body that cannot say/);
      });

      await t.step("50,000 questions: APISIX is asked at most maxQuestionsPerCall", async () => {
        const asks = await ownError(
          "vars",
          /public_limits.*refused: it asked more than 100 ExtraInfo questions/,
        );
        equal(asks.length, 100);
      });

      await t.step("a variable name of 5,000 bytes is never relayed", async () => {
        const asks = await ownError("longVar", /variable name of 5000 bytes, more than 1024/);
        equal(asks.length, 0);
      });

      await t.step("a thrown proxy that throws when inspected fails its call only", async () => {
        await ownError(
          "proxyError",
          /public_limits.*call failed: an error that could not be printed/,
        );
      });

      const tamper = await open("log_tamper");

      await t.step("log lines past the console's limits: the runner's budget holds", async () => {
        const restarts = h.supervisor("log_tamper").restarts;
        const before = h.linesMatching(/a6\.plugin\.log_tamper.*tampered/).length;
        const { reply } = await call(tamper, "lines");
        equal(stopBody(reply), "alive");
        await say.check();
        await h.waitForLine(/log_tamper.*dropped \d+ log lines \(\d+ bytes\) over the limit/);
        const logged = h.linesMatching(/a6\.plugin\.log_tamper.*tampered/).slice(before);
        // 2,000 lines of 8 KiB were sent; at most a second's 64 KiB (and 50 lines) got through.
        ok(logged.length <= 8, `${logged.length} lines logged`);
        ok(logged.every((line) => line.length < 8192 + 200), "every line cut at 8 KiB");
        equal(h.supervisor("log_tamper").restarts, restarts);
        await alive(tamper);
      });

      await t.step("a 1 MiB log message is proof of tampering: a violation", async () => {
        const { reply } = await call(tamper, "huge");
        // The reply went before the injected line was read, or the kill came first.
        ok(reply.rpc === 0 || (reply.rpc === 2 && reply.action === "stop"));
        await h.waitForLine(
          /killing sandbox plugin:log_tamper: protocol violation: a log message of \d+ bytes/,
        );
        equal(h.linesMatching(/tampered 0 z{100000}/).length, 0);
        await alive(tamper);
        await say.check();
      });
    } finally {
      for (const r of routes) r.conn.close();
      say.close();
      await h.close();
    }
  },
});
