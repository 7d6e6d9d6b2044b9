/**
 * Bodies and headers at the protocol's limits, through a real runner and sandbox: the largest
 * bodies an ExtraInfo answer can carry, delivered in small pieces; replies of exactly the
 * largest frame and one byte more; 100 headers with repeated names; bytes that are not UTF-8.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { FrameEncoder, OversizeReplyError } from "../../protocol/encode.ts";
import { MAX_PAYLOAD } from "../../protocol/frame.ts";
import {
  decodeAsk,
  decodeReply,
  encodeExtraInfoResp,
  encodePrepareConf,
  encodeReqCall,
  encodeRespCall,
  type Entry,
  type Reply,
} from "../support/apisix.ts";
import { RawConn, rawFrame } from "../support/raw_conn.ts";
import { startRunner } from "../support/runner.ts";
import { fixtureConfig } from "../fixtures/soak/plugins.ts";
import { maxAnswerBody, pseudoRandomBytes } from "../fuzz/messages.ts";

const PIECE = 4096;

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>),
  );
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function token(conn: RawConn, name: string, conf: unknown): Promise<number> {
  await conn.write(
    rawFrame(
      1,
      encodePrepareConf([[name, JSON.stringify(conf)]], `route#limits-${crypto.randomUUID()}#1`),
    ),
  );
  const reply = decodeReply(await conn.frame());
  if (reply.rpc !== 1) throw new Error(JSON.stringify(reply));
  return reply.token;
}

/**
 * Sends a call, answers each ExtraInfo question with `body` written in small pieces, and
 * returns the reply frame and the questions' kinds.
 */
async function callWithBody(
  conn: RawConn,
  type: 2 | 4,
  payload: Uint8Array,
  body: Uint8Array,
): Promise<{ frame: { type: number; payload: Uint8Array }; asks: string[] }> {
  await conn.write(rawFrame(type, payload));
  const asks: string[] = [];
  for (;;) {
    const frame = await conn.frame(60_000);
    if (frame.type !== 3) return { frame, asks };
    asks.push(decodeAsk(frame.payload).kind);
    await conn.writeInPieces(rawFrame(3, encodeExtraInfoResp(body)), PIECE);
  }
}

function sameBytes(got: Uint8Array | null, want: Uint8Array, what: string): void {
  ok(got !== null, `${what}: no body`);
  equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) throw new Error(`${what}: byte ${i} differs`);
  }
}

/** The largest body the encoder puts in a reply frame, found by trying. */
function largestReplyBody(encode: (body: Uint8Array) => Uint8Array): number {
  let low = MAX_PAYLOAD - 256;
  let high = MAX_PAYLOAD;
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    try {
      encode(new Uint8Array(mid));
      low = mid;
    } catch (error) {
      if (!(error instanceof OversizeReplyError)) throw error;
      high = mid - 1;
    }
  }
  return low;
}

function headersByName(list: readonly Entry[]): Map<string, (string | null)[]> {
  const out = new Map<string, (string | null)[]>();
  for (const [name, value] of list) {
    const key = name.toLowerCase();
    out.set(key, [...out.get(key) ?? [], value]);
  }
  return out;
}

/** 100 headers: 10 names, repeated 1 to 19 times, interleaved, some values not UTF-8. */
function hundredHeaders(): Entry[] {
  const names = Array.from({ length: 10 }, (_, i) => `x-rep-${i}`);
  const out: Entry[] = [];
  let n = 0;
  while (out.length < 100) {
    const name = names[(n * 7) % (1 + (n % 10))]!;
    out.push([name, n % 9 === 0 ? `v${n}-\xff\xfe\x80` : `v${n}`]);
    n++;
  }
  return out;
}

Deno.test("limits", async (t) => {
  const runner = await startRunner({ config: fixtureConfig() });
  const conn = await RawConn.connect(runner.socket);
  try {
    const largestAnswer = maxAnswerBody();
    // A frame is at most 16,777,215 bytes; FlatBuffers builders produce multiples of 4, and the
    // answer's own fields take 24 bytes: 16,777,188 is the largest body an answer can carry.
    equal(largestAnswer, 16_777_188);

    await t.step(
      "the largest request body, in 4 KiB pieces, reaches the plugin byte for byte",
      async () => {
        const body = pseudoRandomBytes(largestAnswer, 1);
        const digest = await token(conn, "echo", { digest: true });
        const { frame, asks } = await callWithBody(
          conn,
          2,
          encodeReqCall({ id: 3, method: 2, token: digest }),
          body,
        );
        deepEqual(asks, ["reqBody"]);
        const reply = decodeReply(frame);
        if (reply.rpc !== 2 || reply.action !== "stop") throw new Error(JSON.stringify(reply));
        deepEqual(Object.fromEntries(reply.headers), {
          "x-digest": await sha256Hex(body),
          "x-length": String(largestAnswer),
        });
      },
    );

    await t.step(
      "the largest upstream body, in 4 KiB pieces, reaches the plugin byte for byte",
      async () => {
        const body = pseudoRandomBytes(largestAnswer, 2);
        const digest = await token(conn, "echo", { digest: true });
        const { frame, asks } = await callWithBody(
          conn,
          4,
          encodeRespCall({ id: 4, status: 200, token: digest }),
          body,
        );
        deepEqual(asks, ["respBody"]);
        const reply = decodeReply(frame);
        if (reply.rpc !== 4) throw new Error(JSON.stringify(reply));
        equal(reply.id, 4);
        deepEqual(Object.fromEntries(reply.headers), {
          "x-digest": await sha256Hex(body),
          "x-length": String(largestAnswer),
        });
      },
    );

    const encoder = new FrameEncoder();
    const stopLimit = largestReplyBody((body) =>
      encoder.reqCall(5, { kind: "stop", status: 200, headers: [], body })
    );
    const respLimit = largestReplyBody((body) => encoder.respCall(6, 0, [], body));

    await t.step(
      `a Stop reply of the largest size (body ${stopLimit}) goes out whole; a larger one is SERVICE_UNAVAILABLE`,
      async () => {
        const echo = await token(conn, "echo", { echoBody: true });
        const body = pseudoRandomBytes(stopLimit, 3);
        const { frame } = await callWithBody(
          conn,
          2,
          encodeReqCall({ id: 5, method: 2, token: echo }),
          body,
        );
        ok(
          frame.payload.length <= MAX_PAYLOAD && frame.payload.length > MAX_PAYLOAD - 4,
          `payload ${frame.payload.length}`,
        );
        const reply = decodeReply(frame);
        if (reply.rpc !== 2 || reply.action !== "stop") {
          throw new Error(JSON.stringify(reply).slice(0, 200));
        }
        equal(reply.id, 5);
        sameBytes(reply.body, body, "stop body");

        const { frame: over } = await callWithBody(
          conn,
          2,
          encodeReqCall({ id: 6, method: 2, token: echo }),
          pseudoRandomBytes(stopLimit + 1, 4),
        );
        deepEqual(decodeReply(over), { rpc: 0, code: 1 });
        // The connection is still in step.
        const say = await token(conn, "say", { body: "still here" });
        const again = decodeReply(
          (await callWithBody(conn, 2, encodeReqCall({ token: say }), new Uint8Array())).frame,
        );
        ok(again.rpc === 2 && again.action === "stop", JSON.stringify(again));
      },
    );

    await t.step(
      `an HTTPRespCall reply of the largest size (body ${respLimit}) goes out whole; a larger one is SERVICE_UNAVAILABLE`,
      async () => {
        const echo = await token(conn, "echo", { echoBody: true });
        const body = pseudoRandomBytes(respLimit, 5);
        const { frame } = await callWithBody(
          conn,
          4,
          encodeRespCall({ id: 7, status: 200, token: echo }),
          body,
        );
        ok(
          frame.payload.length <= MAX_PAYLOAD && frame.payload.length > MAX_PAYLOAD - 4,
          `payload ${frame.payload.length}`,
        );
        const reply = decodeReply(frame);
        if (reply.rpc !== 4) throw new Error(JSON.stringify(reply).slice(0, 200));
        sameBytes(reply.body, body, "response body");

        const { frame: over } = await callWithBody(
          conn,
          4,
          encodeRespCall({ id: 8, status: 200, token: echo }),
          pseudoRandomBytes(respLimit + 1, 6),
        );
        deepEqual(decodeReply(over), { rpc: 0, code: 1 });
      },
    );

    await t.step("100 request headers with repeated names reach the plugin in order", async () => {
      const headers = hundredHeaders();
      const echo = await token(conn, "echo", { headers: true });
      const { frame } = await callWithBody(
        conn,
        2,
        encodeReqCall({ token: echo, headers }),
        new Uint8Array(),
      );
      const reply = decodeReply(frame);
      if (reply.rpc !== 2 || reply.action !== "stop") throw new Error(JSON.stringify(reply));
      equal(reply.headers.length, 100);
      deepEqual(headersByName(reply.headers), headersByName(headers));
      // A plugin that changes one header sends only that one: APISIX keeps the other 100.
      const touch = await token(conn, "echo", { touch: true });
      const touched = decodeReply(
        (await callWithBody(conn, 2, encodeReqCall({ token: touch, headers }), new Uint8Array()))
          .frame,
      ) as Reply;
      deepEqual(touched, {
        rpc: 2,
        id: 0,
        action: "rewrite",
        path: null,
        headers: [["x-echo", "touched"]],
        args: [],
        respHeaders: [],
        body: null,
      });
    });

    await t.step("100 upstream headers with repeated names come back complete", async () => {
      const headers: Entry[] = [
        ...hundredHeaders().slice(0, 96),
        ["Connection", "close"],
        [
          "Content-Length",
          "12",
        ],
        ["Set-Cookie", "a=1"],
        ["Set-Cookie", "b=2"],
      ];
      const say = await token(conn, "say", { body: "unused" });
      const plain = decodeReply(
        (await callWithBody(
          conn,
          4,
          encodeRespCall({ status: 200, token: say, headers }),
          new Uint8Array(),
        )).frame,
      );
      if (plain.rpc !== 4) throw new Error(JSON.stringify(plain));
      // Unchanged: the upstream list as it came, without the hop-by-hop and length headers.
      deepEqual(
        plain.headers,
        headers.filter(([name]) => !/^(connection|content-length)$/i.test(name)),
      );

      const touch = await token(conn, "echo", { touch: true });
      const changed = decodeReply(
        (await callWithBody(
          conn,
          4,
          encodeRespCall({ status: 200, token: touch, headers }),
          new Uint8Array(),
        )).frame,
      );
      if (changed.rpc !== 4) throw new Error(JSON.stringify(changed));
      const want = headersByName(
        headers.filter(([name]) => !/^(connection|content-length)$/i.test(name)),
      );
      want.set("x-echo", ["touched"]);
      deepEqual(headersByName(changed.headers), want);
      equal(changed.headers.length, 99);
    });

    const path = "/caf\xe9/\xff\xfe/ok";
    const args: Entry[] = [["a", "\xff1"], ["a", "2\xc3"], ["b", null], ["c", "\xe2\x82"], [
      "\xfe",
      "x",
    ]];
    const headers: Entry[] = [["x-bin", "\x80\x81\xff"], ["x-bin", "\xc3\x28"], ["x-ok", "plain"]];

    await t.step("non-UTF-8 path, args and headers: reading them changes nothing", async () => {
      const readAll = await token(conn, "echo", { readAll: true });
      const reply = decodeReply(
        (await callWithBody(
          conn,
          2,
          encodeReqCall({ token: readAll, path, args, headers }),
          new Uint8Array(),
        )).frame,
      );
      deepEqual(reply, { rpc: 2, id: 0, action: "none" });
      const touch = await token(conn, "echo", { touch: true });
      const touched = decodeReply(
        (await callWithBody(
          conn,
          2,
          encodeReqCall({ token: touch, path, args, headers }),
          new Uint8Array(),
        )).frame,
      );
      ok(touched.rpc === 2 && touched.action === "rewrite", JSON.stringify(touched));
      equal(touched.path, null);
      deepEqual(touched.args, []);
      deepEqual(touched.headers, [["x-echo", "touched"]]);
    });

    await t.step("non-UTF-8 header values come back byte for byte", async () => {
      const echo = await token(conn, "echo", { headers: true });
      const reply = decodeReply(
        (await callWithBody(
          conn,
          2,
          encodeReqCall({ token: echo, path, args, headers }),
          new Uint8Array(),
        )).frame,
      );
      if (reply.rpc !== 2 || reply.action !== "stop") throw new Error(JSON.stringify(reply));
      deepEqual(reply.headers, headers);
    });

    await t.step(
      "non-UTF-8 path and arg bytes survive a rewrite of that path and arg",
      async () => {
        const append = await token(conn, "echo", { appendArg: "a", suffixPath: "/x" });
        const reply = decodeReply(
          (await callWithBody(
            conn,
            2,
            encodeReqCall({ token: append, path, args, headers }),
            new Uint8Array(),
          )).frame,
        );
        if (reply.rpc !== 2 || reply.action !== "rewrite") throw new Error(JSON.stringify(reply));
        equal(reply.path, path + "/x");
        deepEqual(reply.args, [["a", "\xff1"], ["a", "2\xc3"], ["a", "added"]]);
      },
    );
  } finally {
    conn.close();
    await runner.stop();
  }
});
