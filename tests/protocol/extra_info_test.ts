/**
 * PROTOCOL.md §8 cases 45–51 (ExtraInfo §4.4): the runner's questions on the call's connection,
 * strictly alternating with APISIX's answers, cached per call.
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { ExtraInfoReq } from "../../protocol/gen/extra_info_req.ts";
import { Info } from "../../protocol/gen/info.ts";
import { InfoVar } from "../../protocol/gen/info_var.ts";
import * as flatbuffers from "flatbuffers";
import {
  ApisixConn,
  bytes,
  decodeAsk,
  decodeReply,
  encodeExtraInfoResp,
  encodeReqCall,
  encodeRespCall,
  frame,
  RPC,
} from "../support/apisix.ts";
import { asRespCall, asRewrite, asStop, errorCode } from "../support/replies.ts";
import { sharedRunner } from "../support/runner.ts";
import {
  type Op,
  type Recorded,
  script,
  scriptedConfig,
  seenFromBody,
  seenFromHeader,
} from "../support/scripted.ts";

const shared = sharedRunner({ config: scriptedConfig() });
const SHARED = { sanitizeOps: false, sanitizeResources: false };
const MAX_PAYLOAD = 0xff_ffff;

async function route(req: Op[], resp: Op[] = []) {
  const runner = await shared.get();
  const conn = await ApisixConn.connect(runner.socket);
  const token = await conn.token([["scripted", script(req, resp)]]);
  return { conn, token, runner };
}

async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data as BufferSource));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test({
  name:
    "§8.45 a Var ask is Frame(3, ExtraInfo.Req{info_type 1, Var{name}}); the answer reaches the plugin",
  ...SHARED,
  async fn() {
    const { conn, token } = await route([["var", "remote_addr"], ["echo"]]);
    try {
      await conn.send(RPC.HttpReqCall, encodeReqCall({ id: 1, token }));
      const ask = (await conn.readFrame())!;
      equal(ask.type, RPC.ExtraInfo);
      const req = ExtraInfoReq.getRootAsExtraInfoReq(new flatbuffers.ByteBuffer(ask.payload));
      equal(req.infoType(), Info.InfoVar);
      equal((req.info(new InfoVar()) as InfoVar).name(), "remote_addr");
      await conn.send(RPC.ExtraInfo, encodeExtraInfoResp("127.0.0.1"));
      const reply = decodeReply((await conn.readFrame())!);
      deepEqual(seenFromBody(asStop(reply).body).results, [
        { var: "remote_addr", value: "127.0.0.1" },
      ]);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: '§8.46 an absent result is null; a present empty one is ""',
  ...SHARED,
  async fn() {
    const { conn, token } = await route([["var", "unset"], ["var", "arg_x"], ["echo"]]);
    try {
      const { reply } = await conn.reqCall(
        { token },
        (ask) => ask.kind === "var" && ask.name === "arg_x" ? "" : null,
      );
      deepEqual(seenFromBody(asStop(reply).body).results, [
        { var: "unset", value: null },
        { var: "arg_x", value: "" },
      ]);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.47 three different asks are three strictly alternating frames; a repeat is cached",
  ...SHARED,
  async fn() {
    // The plugin asks concurrently, then asks `a` again.
    const { conn, token } = await route([
      ["all", "var:a", "var:b", "reqBody", "var:a"],
      ["var", "a"],
      ["reqBody"],
      ["echo"],
    ]);
    try {
      const answers: Record<string, string> = { a: "A", b: "B" };
      const { reply, asks } = await conn.strictCall(
        RPC.HttpReqCall,
        encodeReqCall({ token }),
        (ask) => ask.kind === "var" ? answers[ask.name]! : "the body",
      );
      deepEqual(asks, [{ kind: "var", name: "a" }, { kind: "var", name: "b" }, {
        kind: "reqBody",
      }]);
      const results = seenFromBody(asStop(reply).body).results;
      const body: Recorded = {
        body: "request",
        length: 8,
        sha256: await sha256Hex(bytes("the body")),
        latin1: "the body",
      };
      deepEqual(results, [
        { var: "a", value: "A" },
        { var: "b", value: "B" },
        body,
        { var: "a", value: "A" },
        { var: "a", value: "A" },
        body,
      ]);
      // The cache is per call: the next call asks again.
      const again = await conn.reqCall({ token }, (ask) => ask.kind === "var" ? "2" : "x");
      equal(again.asks.length, 3);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.47 plugins of one chain share the call's answers: each question goes once",
  ...SHARED,
  async fn() {
    const runner = await shared.get();
    const conn = await ApisixConn.connect(runner.socket);
    try {
      const token = await conn.token([
        ["scripted", script([["var", "route_id"], ["reqBody"]])],
        ["scripted-b", script([["reqBody"], ["var", "route_id"], ["var", "uri"], ["echo"]])],
      ]);
      const { reply, asks } = await conn.strictCall(
        RPC.HttpReqCall,
        encodeReqCall({ token }),
        (ask) => ask.kind === "var" ? ask.name.toUpperCase() : "body",
      );
      deepEqual(asks.map((a) => a.kind === "var" ? a.name : a.kind), [
        "route_id",
        "reqBody",
        "uri",
      ]);
      equal(seenFromBody(asStop(reply).body).results.length, 3);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.48 APISIX closing instead of answering ends that call only; other connections go on",
  ...SHARED,
  async fn() {
    const runner = await shared.get();
    const other = await route([["set", "x-other", "1"]]);
    const { conn, token } = await route([["var", "remote_addr"], ["echo"]]);
    const partial = await route([["reqBody"], ["echo"]]);
    try {
      await conn.send(RPC.HttpReqCall, encodeReqCall({ token }));
      equal((await conn.readFrame())!.type, RPC.ExtraInfo);
      conn.close();
      // Half an answer, then close.
      await partial.conn.send(RPC.HttpReqCall, encodeReqCall({ token: partial.token }));
      equal((await partial.conn.readFrame())!.type, RPC.ExtraInfo);
      const answer = frame(RPC.ExtraInfo, encodeExtraInfoResp("only part of this arrives"));
      await partial.conn.write(answer.subarray(0, 10));
      partial.conn.close();

      for (let i = 0; i < 3; i++) {
        const { reply } = await other.conn.reqCall({ token: other.token });
        equal(reply.rpc, 2);
      }
      // The abandoned calls' plugin still serves new calls.
      const fresh = await ApisixConn.connect(runner.socket);
      const { reply } = await fresh.reqCall({ token }, () => "10.0.0.1");
      deepEqual(seenFromBody(asStop(reply).body).results, [{
        var: "remote_addr",
        value: "10.0.0.1",
      }]);
      fresh.close();
      ok(!runner.lines.some((line) => /level=(error|fatal)/.test(line)), runner.lines.join("\n"));
    } finally {
      conn.close();
      partial.conn.close();
      other.conn.close();
    }
  },
});

Deno.test({
  name: "§8.48 a wrong frame instead of an answer gets BAD_REQUEST and that connection closes",
  ...SHARED,
  async fn() {
    const { conn, token } = await route([["var", "remote_addr"], ["echo"]]);
    try {
      await conn.send(RPC.HttpReqCall, encodeReqCall({ token }));
      equal((await conn.readFrame())!.type, RPC.ExtraInfo);
      await conn.send(RPC.HttpReqCall, encodeReqCall({ token }));
      equal(errorCode(decodeReply((await conn.readFrame())!)), 0);
      equal(await conn.readFrame(), null);
      // A malformed answer likewise.
      const again = await route([["var", "remote_addr"], ["echo"]]);
      await again.conn.send(RPC.HttpReqCall, encodeReqCall({ token: again.token }));
      equal((await again.conn.readFrame())!.type, RPC.ExtraInfo);
      await again.conn.send(RPC.ExtraInfo, new Uint8Array([200, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]));
      equal(errorCode(decodeReply((await again.conn.readFrame())!)), 0);
      equal(await again.conn.readFrame(), null);
      again.conn.close();
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.49 RespBody asked twice (two plugins, twice each) goes on the wire once",
  ...SHARED,
  async fn() {
    const runner = await shared.get();
    const conn = await ApisixConn.connect(runner.socket);
    try {
      const token = await conn.token([
        ["scripted", script([], [["respBody"], ["all", "respBody", "respBody"]])],
        ["scripted-b", script([], [["respBody"], ["echo"]])],
      ]);
      const body = "upstream body \x00\xff";
      const { reply, asks } = await conn.strictCall(
        RPC.HttpRespCall,
        encodeRespCall({ id: 9, status: 200, token, headers: [["Content-Type", "text/plain"]] }),
        (ask) => ask.kind === "respBody" ? bytes(body) : null,
      );
      deepEqual(asks, [{ kind: "respBody" }]);
      const echo = asRespCall(reply).headers.find(([name]) => name === "x-echo")?.[1];
      const seen = seenFromHeader(echo);
      deepEqual(seen.results, [{
        body: "response",
        length: bytes(body).length,
        sha256: await sha256Hex(bytes(body)),
        latin1: body,
      }]);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.50 the request phase never asks for the response body (see runner/apisix/call_test.ts)",
  ...SHARED,
  async fn() {
    // The request API offers no way to ask for it: a plugin reading everything it can during a
    // request asks only for vars and the request body.
    const { conn, token } = await route([["var", "x"], ["reqBody"], ["echo"]]);
    try {
      const { reply, asks } = await conn.reqCall({ token }, () => "v");
      ok(asks.every((ask) => ask.kind !== "respBody"));
      asStop(reply);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.51 a 5 MiB ReqBody answer written in many small pieces is reassembled byte for byte",
  ...SHARED,
  async fn() {
    const { conn, token } = await route([["reqBody"], ["echo"]]);
    try {
      const body = Uint8Array.from(
        { length: 5 * 1024 * 1024 },
        (_, i) => (i * 7 + (i >> 11)) & 0xff,
      );
      await conn.send(RPC.HttpReqCall, encodeReqCall({ token }));
      deepEqual(decodeAsk((await conn.readFrame())!.payload), { kind: "reqBody" });
      await conn.writeChunked(frame(RPC.ExtraInfo, encodeExtraInfoResp(body)), 4096);
      const reply = decodeReply((await conn.readFrame(60_000))!);
      deepEqual(seenFromBody(asStop(reply).body).results, [{
        body: "request",
        length: body.length,
        sha256: await sha256Hex(body),
        latin1: null,
      }]);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.51 an answer with the largest payload (16,777,215 bytes) is read whole",
  ...SHARED,
  async fn() {
    const { conn, token } = await route([["reqBody"], ["echo"]]);
    try {
      // A flatbuffer of just under the limit, padded at the end to exactly the limit (readers
      // ignore trailing bytes).
      const body = new Uint8Array(MAX_PAYLOAD - 64).fill(0x5a);
      const table = encodeExtraInfoResp(body);
      const payload = new Uint8Array(MAX_PAYLOAD);
      payload.set(table);
      await conn.send(RPC.HttpReqCall, encodeReqCall({ token }));
      equal((await conn.readFrame())!.type, RPC.ExtraInfo);
      const bytesOut = frame(RPC.ExtraInfo, payload);
      deepEqual([...bytesOut.subarray(0, 4)], [3, 0xff, 0xff, 0xff]);
      await conn.write(bytesOut);
      const reply = decodeReply((await conn.readFrame(60_000))!);
      const [result] = seenFromBody(asStop(reply).body).results;
      ok(result && "length" in result);
      equal(result.length, body.length);
      equal(result.sha256, await sha256Hex(body));
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.47 concurrent calls on many connections each get their own answers",
  ...SHARED,
  async fn() {
    const runner = await shared.get();
    const setup = await ApisixConn.connect(runner.socket);
    const token = await setup.token([[
      "scripted",
      script([["var", "who"], ["reqBody"], ["echo"]]),
    ]]);
    setup.close();
    const replies = await Promise.all(Array.from({ length: 40 }, async (_, i) => {
      const conn = await ApisixConn.connect(runner.socket);
      try {
        const { reply, asks } = await conn.reqCall(
          { id: i, token },
          (ask) => ask.kind === "var" ? `caller-${i}` : `body-${i}`,
        );
        equal(asks.length, 2);
        return seenFromBody(asStop(reply).body);
      } finally {
        conn.close();
      }
    }));
    for (const [i, seen] of replies.entries()) {
      equal(seen.id, i);
      deepEqual(seen.results.map((r) => "var" in r ? r.value : r.latin1), [
        `caller-${i}`,
        `body-${i}`,
      ]);
    }
  },
});

Deno.test({
  name:
    "§8.19 §8.47 a deadline passing while APISIX answers fails that call alone, after the answer",
  ...SHARED,
  async fn() {
    const runner = await shared.get();
    const a = await ApisixConn.connect(runner.socket);
    const b = await ApisixConn.connect(runner.socket);
    try {
      // `slow` has a 1500 ms deadline. A waits for its body; B is busy in the same sandbox.
      const waiting = await a.token([["slow", script([["reqBody"], ["echo"]])]]);
      const busy = await b.token([["slow", script([["sleep", 1000], ["set", "x-b", "1"]])]]);
      await a.send(RPC.HttpReqCall, encodeReqCall({ id: 1, token: waiting }));
      equal((await a.readFrame())!.type, RPC.ExtraInfo);
      await new Promise((resolve) => setTimeout(resolve, 800));
      const other = b.reqCall({ token: busy });
      await runner.waitForLine(/logger=a6\.plugin\.slow .*waiting for APISIX's answer/);
      // The runner still takes the (late) answer, then fails the call: the stream stays in step.
      ok(await a.quietFor(50), "no reply before the owed answer");
      await a.send(RPC.ExtraInfo, encodeExtraInfoResp("late body"));
      equal(errorCode(decodeReply((await a.readFrame())!)), 1);
      ok((await a.token(null)) !== 0, "the connection is still usable");
      // B, in flight in the same sandbox at A's deadline, was not killed with it.
      deepEqual(asRewrite((await other).reply).headers, [["x-b", "1"]]);
      ok(!runner.lines.some((line) => /killing sandbox plugin:slow/.test(line)));
    } finally {
      a.close();
      b.close();
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
