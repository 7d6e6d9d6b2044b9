/**
 * PROTOCOL.md §8 cases 13–20 (framing §2 and error frames §6.1), over the runner's real socket.
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import {
  ApisixConn,
  decodeReply,
  encodeExtraInfoResp,
  encodePrepareConf,
  encodeReqCall,
  encodeRespCall,
  frame,
  latin1,
  RPC,
} from "../support/apisix.ts";
import { asNone, asRespCall, asRewrite, asStop, errorCode } from "../support/replies.ts";
import { sharedRunner } from "../support/runner.ts";
import { routeKey, script, scriptedConfig } from "../support/scripted.ts";

const shared = sharedRunner({ config: scriptedConfig() });
const SHARED = { sanitizeOps: false, sanitizeResources: false };
const MAX_PAYLOAD = 0xff_ffff;
// Err.Resp with code absent (BAD_REQUEST): the 12-byte empty table of Appendix B.
const EMPTY_TABLE = [8, 0, 0, 0, 4, 0, 4, 0, 4, 0, 0, 0];

async function connect(): Promise<ApisixConn> {
  return await ApisixConn.connect((await shared.get()).socket);
}

/** Sends a raw frame and returns the reply frame. */
async function exchange(conn: ApisixConn, type: number, payload: Uint8Array) {
  await conn.send(type, payload);
  const reply = await conn.readFrame();
  if (!reply) throw new Error("the runner closed the connection");
  return reply;
}

/** Proves the connection still works: a PrepareConf gets a token. */
async function stillUsable(conn: ApisixConn): Promise<void> {
  ok((await conn.token(null)) !== 0);
}

/** A deterministic pseudo-random byte source (xorshift32), so failures reproduce. */
function randomBytes(seed: number, length: number): Uint8Array {
  let x = seed || 1;
  return Uint8Array.from({ length }, () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x & 0xff;
  });
}

Deno.test({
  name: "§8.13 every reply's 24-bit length equals its payload, which is never below 12 bytes",
  ...SHARED,
  async fn() {
    const conn = await connect();
    try {
      const none = await conn.token(null);
      const stop = await conn.token([["scripted", script([["var", "x"], ["respBody", "b"]])]]);
      asNone((await conn.reqCall({ token: none })).reply);
      asStop((await conn.reqCall({ id: 7, token: stop }, () => "v")).reply);
      asRespCall((await conn.respCall({ id: 1, status: 200, token: none })).reply);
      errorCode((await conn.reqCall({ token: 1 + ((stop + 0x1000_0000) >>> 0) })).reply);
      errorCode(decodeReply(await exchange(conn, 9, new Uint8Array(12))));
      // The client parsed every frame by its length field, and no byte is left over.
      equal(conn.buffered, 0);
      ok(conn.received.length >= 7);
      for (const { type, length } of conn.received) {
        ok(length >= 12 && length <= MAX_PAYLOAD, `frame of type ${type} has length ${length}`);
      }
      deepEqual(conn.received.map((f) => f.type), [1, 1, 2, 3, 2, 4, 0, 0]);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.14 an unknown RPC type gets Frame(0, Err{code absent}) and the connection stays usable",
  ...SHARED,
  async fn() {
    const conn = await connect();
    try {
      for (const type of [9, 5, 255]) {
        const reply = await exchange(conn, type, randomBytes(type, 12));
        equal(reply.type, 0);
        deepEqual([...reply.payload], EMPTY_TABLE);
      }
      // A large payload of an unknown type is read to its end, not mistaken for frames.
      const big = await exchange(conn, 7, randomBytes(7, 200_000));
      deepEqual([big.type, ...big.payload], [0, ...EMPTY_TABLE]);
      await stillUsable(conn);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.15 an ExtraInfo answer outside an exchange gets BAD_REQUEST",
  ...SHARED,
  async fn() {
    const conn = await connect();
    try {
      const reply = await exchange(conn, RPC.ExtraInfo, encodeExtraInfoResp("unasked"));
      deepEqual([reply.type, ...reply.payload], [0, ...EMPTY_TABLE]);
      await stillUsable(conn);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.16 a zero-length payload for types 1, 2 and 4 gets BAD_REQUEST, no crash",
  ...SHARED,
  async fn() {
    const conn = await connect();
    try {
      for (const type of [RPC.PrepareConf, RPC.HttpReqCall, RPC.HttpRespCall]) {
        const reply = await exchange(conn, type, new Uint8Array(0));
        deepEqual([reply.type, ...reply.payload], [0, ...EMPTY_TABLE], `type ${type}`);
      }
      await stillUsable(conn);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.17 malformed payloads (bad offsets, overlong vectors, bad vtables) get BAD_REQUEST",
  ...SHARED,
  async fn() {
    const conn = await connect();
    const token = await conn.token([["scripted", script([["echo"]])]]);
    const valid = encodeReqCall({ token, path: "/p", headers: [["a", "b"]] });
    const u32 = (bytes: Uint8Array, at: number, value: number) =>
      new DataView(bytes.buffer, bytes.byteOffset).setUint32(at, value, true);
    const cases: Array<[string, number, Uint8Array]> = [];
    {
      const p = valid.slice();
      u32(p, 0, p.length + 64);
      cases.push(["root offset beyond the buffer", RPC.HttpReqCall, p]);
    }
    {
      const p = valid.slice();
      u32(p, 0, 2);
      cases.push(["misaligned root offset", RPC.HttpReqCall, p]);
    }
    {
      const p = valid.slice();
      const root = new DataView(p.buffer).getUint32(0, true);
      u32(p, root, -4096);
      cases.push(["vtable beyond the buffer", RPC.HttpReqCall, p]);
    }
    {
      // Make the path string claim more bytes than the payload holds.
      const p = valid.slice();
      const at = latin1(p).indexOf("/p");
      u32(p, at - 4, 1_000_000);
      cases.push(["string longer than the payload", RPC.HttpReqCall, p]);
    }
    {
      const p = encodePrepareConf([["scripted", "{}"]], "k");
      const at = latin1(p).indexOf("scripted");
      // The conf vector's count sits before the table offsets; corrupt every u32 that is 1.
      const view = new DataView(p.buffer, p.byteOffset);
      for (let i = 4; i + 4 <= at; i += 4) if (view.getUint32(i, true) === 1) u32(p, i, 9999);
      cases.push(["table vector longer than the payload", RPC.PrepareConf, p]);
    }
    {
      const p = encodeRespCall({ token, headers: [["Server", "x"]] }).slice();
      u32(p, 0, 0xffff_fff0);
      cases.push(["response call with a huge root offset", RPC.HttpRespCall, p]);
    }
    try {
      for (const [what, type, payload] of cases) {
        const reply = await exchange(conn, type, payload);
        deepEqual([reply.type, ...reply.payload], [0, ...EMPTY_TABLE], what);
      }
      // Short garbage of every length below the smallest table.
      for (let length = 1; length < 12; length++) {
        const reply = await exchange(conn, RPC.HttpReqCall, randomBytes(length, length));
        deepEqual([reply.type, ...reply.payload], [0, ...EMPTY_TABLE], `${length} bytes`);
      }
      asStop((await conn.reqCall({ token })).reply);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.17 random payloads never crash the runner nor disturb another connection",
  ...SHARED,
  async fn() {
    const runner = await shared.get();
    const bystander = await connect();
    const token = await bystander.token([["scripted", script([["set", "x-ok", "1"]])]]);
    const conn = await connect();
    try {
      for (let seed = 1; seed <= 150; seed++) {
        const type = [RPC.PrepareConf, RPC.HttpReqCall, RPC.HttpRespCall][seed % 3]!;
        const payload = randomBytes(seed * 7919, 12 + (seed * 37) % 300);
        const reply = await exchange(conn, type, payload);
        // Almost all are malformed (BAD_REQUEST); a payload that happens to be a valid table is
        // answered normally (a token, or CONF_TOKEN_NOT_FOUND for a random token).
        ok(
          reply.type === 0 || (type === RPC.PrepareConf && reply.type === 1),
          `seed ${seed}: reply type ${reply.type}`,
        );
      }
      await stillUsable(conn);
      ok((await bystander.reqCall({ token })).reply.rpc === 2);
      equal(runner.process.pid > 0, true);
      ok(!runner.lines.some((line) => /level=(error|fatal)/.test(line)), runner.lines.join("\n"));
    } finally {
      conn.close();
      bystander.close();
    }
  },
});

Deno.test({
  name: "§8.18 a plugin that throws gets Frame(0, SERVICE_UNAVAILABLE), type 0 not 2",
  ...SHARED,
  async fn() {
    const runner = await shared.get();
    const conn = await connect();
    const message = `boom-${crypto.randomUUID()}`;
    try {
      const token = await conn.token([["scripted", script([["throw", message]])]]);
      const { reply } = await conn.reqCall({ id: 5, token });
      equal(errorCode(reply), 1);
      equal(conn.received.at(-1)!.type, 0);
      await runner.waitForLine(new RegExp(`logger=a6\\.plugin\\.scripted .*${message}`));
      // Also in the response phase.
      const resp = await conn.token([["scripted", script([], [["throw", message]])]]);
      equal(errorCode((await conn.respCall({ id: 5, status: 200, token: resp })).reply), 1);
      await stillUsable(conn);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.19 a plugin over its time budget gets Frame(0, SERVICE_UNAVAILABLE) at the deadline",
  ...SHARED,
  async fn() {
    const runner = await shared.get();
    const conn = await connect();
    try {
      // `slow` has timeoutMs 1500; the plugin sleeps 20 s.
      const token = await conn.token([["slow", script([["sleep", 20_000]])]]);
      const started = performance.now();
      const { reply } = await conn.reqCall({ token });
      const ms = performance.now() - started;
      equal(errorCode(reply), 1);
      ok(ms >= 1400 && ms < 10_000, `answered after ${Math.round(ms)} ms`);
      await runner.waitForLine(/logger=a6\.plugin\.slow .*killing sandbox/);
      // Right away, while the killed sandbox is still going: a PrepareConf of another route
      // must wait for the next sandbox, not skip the plugin for the token's lifetime.
      const fast = await conn.token([["slow", script([["set", "x-fast", "1"]])]]);
      deepEqual(asRewrite((await conn.reqCall({ token: fast })).reply).headers, [["x-fast", "1"]]);
      // A busy loop is stopped the same way (the sandbox process is killed), and a call that
      // arrives during the restart waits for its conf in the new sandbox.
      const spin = await conn.token([["slow", script([["spin", 20_000]])]]);
      equal(errorCode((await conn.reqCall({ token: spin })).reply), 1);
      deepEqual(asRewrite((await conn.reqCall({ token: fast })).reply).headers, [["x-fast", "1"]]);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.19 a fail-open plugin over its budget is skipped: NONE instead of an error",
  ...SHARED,
  async fn() {
    const conn = await connect();
    try {
      const token = await conn.token([
        ["open", script([["sleep", 20_000]])],
        ["scripted", script([["set", "x-after", "1"]])],
      ]);
      const { reply } = await conn.reqCall({ token });
      equal(reply.rpc, 2);
      if (reply.rpc === 2 && reply.action === "rewrite") {
        deepEqual(reply.headers, [["x-after", "1"]]);
      } else {
        throw new Error(`expected the second plugin's rewrite, got ${reply.rpc}`);
      }
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.20 a reply over 16,777,215 bytes becomes Frame(0, SERVICE_UNAVAILABLE)",
  ...SHARED,
  async fn() {
    const conn = await connect();
    try {
      const token = await conn.token([
        ["scripted", script([["respBodyRepeat", 0x61, 17 * 1024 * 1024]])],
      ]);
      const { reply } = await conn.reqCall({ token });
      equal(errorCode(reply), 1);
      equal(conn.received.at(-1)!.length, 20);
      await stillUsable(conn);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.20 a reply just under the limit is sent whole with an exact 24-bit length",
  ...SHARED,
  async fn() {
    const conn = await connect();
    try {
      const size = MAX_PAYLOAD - 64;
      const token = await conn.token([["scripted", script([["respBodyRepeat", 0x62, size]])]]);
      const { reply } = await conn.reqCall({ id: 1, token });
      const stop = asStop(reply);
      equal(stop.body!.length, size);
      ok(stop.body!.every((b) => b === 0x62));
      const { length } = conn.received.at(-1)!;
      ok(length > size && length <= MAX_PAYLOAD, `length ${length}`);
      await stillUsable(conn);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.13-14 a frame header split across writes and garbage after it are handled in order",
  ...SHARED,
  async fn() {
    const conn = await connect();
    try {
      const bytes = new Uint8Array([
        ...frame(9, new Uint8Array(12)),
        ...frame(RPC.PrepareConf, encodePrepareConf(null, routeKey())),
      ]);
      await conn.writeChunked(bytes, 3, 1);
      equal((await conn.readFrame())!.type, 0);
      equal((await conn.readFrame())!.type, 1);
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
