/**
 * `Plugin.prefetch`: what a conf declares is asked from APISIX before the call reaches the
 * plugin's sandbox, still strictly one question at a time on the call's connection, and the
 * plugin reads the answers without asking again.
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import {
  ApisixConn,
  decodeAsk,
  decodeReply,
  encodeExtraInfoResp,
  encodeReqCall,
  encodeRespCall,
  RPC,
} from "../support/apisix.ts";
import { asRespCall, asStop, errorCode } from "../support/replies.ts";
import { type RunningRunner, sharedRunner } from "../support/runner.ts";
import {
  type Op,
  routeKey,
  scriptedConfig,
  seenFromBody,
  seenFromHeader,
} from "../support/scripted.ts";

const shared = sharedRunner({ config: scriptedConfig() });
const SHARED = { sanitizeOps: false, sanitizeResources: false };

/** Runs `test` on a new connection to the shared runner. */
async function onConn(
  test: (conn: ApisixConn, runner: RunningRunner) => Promise<void>,
): Promise<void> {
  const runner = await shared.get();
  const conn = await ApisixConn.connect(runner.socket);
  try {
    await test(conn, runner);
  } finally {
    conn.close();
  }
}

function conf(prefetch: unknown, req: Op[], resp: Op[] = []): string {
  return JSON.stringify({ req, resp, prefetch });
}

Deno.test({
  name: "declared vars and the request body are asked once each, in order, read or not",
  ...SHARED,
  async fn() {
    await onConn(async (conn) => {
      const token = await conn.token([[
        "scripted",
        conf(
          { vars: ["remote_addr", "uri", "remote_addr"], requestBody: true },
          [["var", "remote_addr"], ["reqBody"], ["var", "remote_addr"], ["echo"]],
        ),
      ]]);
      const { reply, asks } = await conn.strictCall(
        RPC.HttpReqCall,
        encodeReqCall({ id: 7, token }),
        (ask) => ask.kind === "var" ? (ask.name === "uri" ? "/a" : "10.1.2.3") : "the body",
      );
      // `uri` is asked although the plugin never reads it: that is what prefetching means.
      deepEqual(asks, [
        { kind: "var", name: "remote_addr" },
        { kind: "var", name: "uri" },
        { kind: "reqBody" },
      ]);
      const seen = seenFromBody(asStop(reply).body);
      equal(seen.id, 7);
      deepEqual(seen.results[0], { var: "remote_addr", value: "10.1.2.3" });
      deepEqual(seen.results[2], { var: "remote_addr", value: "10.1.2.3" });
      const body = seen.results[1] as { body: string; length: number; latin1: string };
      equal(body.body, "request");
      equal(body.latin1, "the body");
    });
  },
});

Deno.test({
  name: "an unset prefetched var reaches the plugin as null; undeclared vars are still asked",
  ...SHARED,
  async fn() {
    await onConn(async (conn) => {
      const token = await conn.token([[
        "scripted",
        conf({ vars: ["unset"] }, [["var", "unset"], ["var", "extra"], ["echo"]]),
      ]]);
      const { reply, asks } = await conn.reqCall(
        { token },
        (ask) => ask.kind === "var" && ask.name === "extra" ? "E" : null,
      );
      deepEqual(asks, [{ kind: "var", name: "unset" }, { kind: "var", name: "extra" }]);
      deepEqual(seenFromBody(asStop(reply).body).results, [
        { var: "unset", value: null },
        { var: "extra", value: "E" },
      ]);
    });
  },
});

Deno.test({
  name: "in the response phase only the upstream body is prefetched, not the request body",
  ...SHARED,
  async fn() {
    await onConn(async (conn) => {
      const token = await conn.token(
        [[
          "scripted",
          conf({ requestBody: true, responseBody: true }, [], [["respBody"], [
            "echo",
          ]]),
        ]],
        routeKey("ext-plugin-post-resp"),
      );
      const { reply, asks } = await conn.respCall(
        { token, status: 200 },
        (ask) => ask.kind === "respBody" ? "upstream says hi" : null,
      );
      deepEqual(asks, [{ kind: "respBody" }]);
      const echo = asRespCall(reply).headers.find(([name]) => name === "x-echo")?.[1];
      const results = seenFromHeader(echo).results;
      equal((results[0] as { latin1: string }).latin1, "upstream says hi");
    });
  },
});

Deno.test({
  name: "a prefetch declaration out of bounds rejects the conf with a log line naming the route",
  ...SHARED,
  async fn() {
    await onConn(async (conn, runner) => {
      for (
        const [prefetch, reason] of [
          [{ vars: ["has space"] }, /var name must be/],
          [{ vars: Array.from({ length: 33 }, (_, i) => `v${i}`) }, /at most 32 vars/],
          [{ body: true }, /unknown key/],
          [["remote_addr"], /must return an object/],
        ] as const
      ) {
        const key = routeKey();
        const token = await conn.token([["scripted", conf(prefetch, [["status", 418]])]], key);
        const line = await runner.waitForLine(new RegExp(`${key}.*conf rejected`));
        ok(reason.test(line), line);
        // The route runs without the plugin: no change.
        const { reply } = await conn.reqCall({ token });
        equal(reply.rpc, RPC.HttpReqCall);
      }
    });
  },
});

Deno.test({
  name: "a deadline passing while APISIX answers a prefetched question fails the call after it",
  ...SHARED,
  async fn() {
    await onConn(async (conn, runner) => {
      // `slow` has a 1500 ms deadline.
      const token = await conn.token([["slow", conf({ requestBody: true }, [["echo"]])]]);
      await conn.send(RPC.HttpReqCall, encodeReqCall({ id: 3, token }));
      equal((await conn.readFrame())!.type, RPC.ExtraInfo);
      await runner.waitForLine(/logger=a6\.plugin\.slow .*waiting for APISIX's answer/);
      ok(await conn.quietFor(50), "no reply before the owed answer");
      await conn.send(RPC.ExtraInfo, encodeExtraInfoResp("late body"));
      equal(errorCode(decodeReply((await conn.readFrame())!)), 1);
      ok((await conn.token(null)) !== 0, "the connection is still usable");
    });
  },
});

Deno.test({
  name: "a prefetched var reaches the response filter without a question from the sandbox",
  ...SHARED,
  async fn() {
    await onConn(async (conn) => {
      const token = await conn.token(
        [["scripted", conf({ vars: ["upstream_addr"] }, [], [["var", "upstream_addr"], ["echo"]])]],
        routeKey("ext-plugin-post-resp"),
      );
      await conn.send(RPC.HttpRespCall, encodeRespCall({ token, status: 200 }));
      const ask = await conn.readFrame();
      deepEqual(decodeAsk(ask!.payload), { kind: "var", name: "upstream_addr" });
      await conn.send(RPC.ExtraInfo, encodeExtraInfoResp("127.0.0.1:8080"));
      const echo = asRespCall(decodeReply((await conn.readFrame())!)).headers.find(([name]) =>
        name === "x-echo"
      )?.[1];
      deepEqual(seenFromHeader(echo).results, [{ var: "upstream_addr", value: "127.0.0.1:8080" }]);
    });
  },
});

Deno.test({
  name:
    "a client gone while a prefetched question waits: the call is dropped, the plugin serves on",
  ...SHARED,
  async fn() {
    const runner = await shared.get();
    const gone = await ApisixConn.connect(runner.socket);
    const token = await gone.token([["scripted", conf({ vars: ["uri"] }, [["status", 201]])]]);
    await gone.send(RPC.HttpReqCall, encodeReqCall({ id: 1, token }));
    deepEqual(decodeAsk((await gone.readFrame())!.payload), { kind: "var", name: "uri" });
    const linesBefore = runner.lines.length;
    gone.close();
    await onConn(async (conn) => {
      // The same conf keeps answering (tokens are shared by every connection of the runner).
      const { reply, asks } = await conn.reqCall({ id: 2, token }, () => "/next");
      deepEqual(asks, [{ kind: "var", name: "uri" }]);
      equal(asStop(reply).status, 201);
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const after = runner.lines.slice(linesBefore);
    ok(!after.some((line) => /level=(error|warning)/.test(line)), after.join("\n"));
  },
});
