/**
 * The bounded CI run of the socket fuzz targets against one real runner (fixed seed), plus the
 * deterministic edge cases: every split point, many frames in one write, every RPC type,
 * lengths up to 16,777,215, and payloads built to get past the verifier's first checks. A
 * witness connection does PrepareConf + HTTPReqCall throughout and must never fail.
 */
import fc from "fast-check";
import { deepEqual, equal, ok } from "node:assert/strict";
import {
  decodeReply,
  encodeExtraInfoResp,
  encodePrepareConf,
  encodeReqCall,
  latin1,
} from "../support/apisix.ts";
import { concat, pause, RawConn, rawFrame } from "../support/raw_conn.ts";
import { openFds } from "../faults/faults.ts";
import {
  hugeConfVector,
  hugeHeaderVector,
  paddedReqCall,
  selfReferencingPrepareConf,
  signedOffsetPrepareConf,
} from "./crafted.ts";
import { MAX_TABLE_VECTOR } from "../../protocol/verify.ts";
import { CI_SETTINGS, pseudoRandomBytes } from "./messages.ts";
import { FRAME_TIMEOUT_MS, prepare, SOCKET_TARGETS, SocketContext } from "./socket_targets.ts";

const CI_SEED = 20_261_125;
const MAX_PAYLOAD = 0xff_ffff;

function isStop(frame: { type: number; payload: Uint8Array }, body: string, id = 0): void {
  const reply = decodeReply(frame);
  if (reply.rpc !== 2 || reply.action !== "stop") {
    throw new Error(`not a stop: ${JSON.stringify(reply)}`);
  }
  equal(latin1(reply.body!), body);
  equal(reply.id, id);
}

function isError(frame: { type: number; payload: Uint8Array }, code: number): void {
  deepEqual(decodeReply(frame), { rpc: 0, code });
}

Deno.test("fuzz over the socket", async (t) => {
  const ctx = await SocketContext.start();
  const route = ctx.routes[0]!;
  try {
    for (const target of SOCKET_TARGETS) {
      await t.step(target.name, async () => {
        await fc.assert(target.property(CI_SETTINGS, ctx), {
          seed: CI_SEED,
          numRuns: target.ciRuns,
        });
      });
    }

    await t.step(
      "an exchange split at every possible point is answered once, correctly",
      async () => {
        const stream = concat([
          rawFrame(
            1,
            encodePrepareConf([["say", JSON.stringify({ body: route.body })]], route.key),
          ),
          rawFrame(
            2,
            encodeReqCall({ id: 77, token: route.token, path: "/a", headers: [["x-a", "1"]] }),
          ),
          rawFrame(9, encodeExtraInfoResp(null)),
        ]);
        for (let cut = 1; cut < stream.length; cut++) {
          const conn = await RawConn.connect(ctx.runner.socket);
          try {
            await conn.writeSplit(stream, [cut], 2);
            deepEqual(
              decodeReply(await conn.frame()),
              { rpc: 1, token: route.token },
              `cut ${cut}`,
            );
            isStop(await conn.frame(), route.body, 77);
            isError(await conn.frame(), 0);
            equal(await conn.next(20), "timeout", `cut ${cut}: nothing more`);
          } finally {
            conn.close();
          }
        }
      },
    );

    await t.step("300 frames in one write get 300 answers in order", async () => {
      const frames = [];
      for (let i = 0; i < 300; i++) {
        frames.push(
          i % 3 === 0
            ? rawFrame(2, encodeReqCall({ id: i, token: route.token }))
            : i % 3 === 1
            ? rawFrame(7, encodeExtraInfoResp(null))
            : rawFrame(2, new Uint8Array(3)),
        );
      }
      const conn = await RawConn.connect(ctx.runner.socket);
      try {
        await conn.write(concat(frames));
        for (let i = 0; i < 300; i++) {
          const frame = await conn.frame();
          if (i % 3 === 0) isStop(frame, route.body, i);
          else isError(frame, 0);
        }
      } finally {
        conn.close();
      }
    });

    await t.step(
      "every RPC type: 1 prepares, 2 and 4 look up the token, the rest BAD_REQUEST",
      async () => {
        const empty = encodeExtraInfoResp(null); // the 12-byte empty table
        const conn = await RawConn.connect(ctx.runner.socket);
        try {
          await conn.write(concat(Array.from({ length: 256 }, (_, type) => rawFrame(type, empty))));
          for (let type = 0; type < 256; type++) {
            const reply = decodeReply(await conn.frame());
            if (type === 1) {
              ok(reply.rpc === 1 && reply.token !== 0, `type 1: ${JSON.stringify(reply)}`);
            } else {deepEqual(
                reply,
                { rpc: 0, code: type === 2 || type === 4 ? 2 : 0 },
                `type ${type}`,
              );}
          }
        } finally {
          conn.close();
        }
      },
    );

    await t.step("a 16,777,215-byte request in 64 KiB pieces is answered", async () => {
      const conn = await RawConn.connect(ctx.runner.socket);
      try {
        await conn.writeInPieces(rawFrame(2, paddedReqCall(route.token, MAX_PAYLOAD, 5)), 65_536);
        isStop(await conn.frame(), route.body, 5);
        // Random bytes of the same length: BAD_REQUEST, and the framing survives.
        await conn.writeInPieces(rawFrame(2, pseudoRandomBytes(MAX_PAYLOAD, 7)), 65_536);
        isError(await conn.frame(), 0);
        await conn.write(rawFrame(2, encodeReqCall({ token: route.token })));
        isStop(await conn.frame(), route.body);
      } finally {
        conn.close();
      }
    });

    await t.step("a 16,777,215-byte frame cut short closes only that connection", async () => {
      const conn = await RawConn.connect(ctx.runner.socket);
      try {
        const frame = rawFrame(2, paddedReqCall(route.token, MAX_PAYLOAD));
        await conn.writeInPieces(frame.subarray(0, 1 << 20), 65_536);
        await conn.closeWrite();
        equal(await conn.next(FRAME_TIMEOUT_MS), "eof");
      } finally {
        conn.close();
      }
    });

    await t.step("field offsets the decoder reads as negative: BAD_REQUEST", async () => {
      const conn = await RawConn.connect(ctx.runner.socket);
      try {
        await conn.write(rawFrame(1, signedOffsetPrepareConf()));
        isError(await conn.frame(), 0);
        equal(
          await prepare(conn, [["say", JSON.stringify({ body: route.body })]], route.key),
          route.token,
        );
      } finally {
        conn.close();
      }
    });

    await t.step("a table that points back at itself: BAD_REQUEST", async () => {
      const conn = await RawConn.connect(ctx.runner.socket);
      try {
        await conn.write(rawFrame(1, selfReferencingPrepareConf()));
        isError(await conn.frame(), 0);
      } finally {
        conn.close();
      }
    });

    await t.step("a conf list of 4 million entries that share one table: BAD_REQUEST", async () => {
      const conn = await RawConn.connect(ctx.runner.socket);
      try {
        await conn.write(rawFrame(1, hugeConfVector(4_000_000, "no-such-plugin", "{}")));
        isError(await conn.frame(), 0);
        // 1024 entries are still a conf list.
        await conn.write(rawFrame(1, hugeConfVector(1024, "say", '{"body":"many"}')));
        const reply = decodeReply(await conn.frame());
        if (reply.rpc !== 1) {
          throw new Error(JSON.stringify(reply));
        }
        await conn.write(rawFrame(2, encodeReqCall({ token: reply.token })));
        isStop(await conn.frame(), "many");
      } finally {
        conn.close();
      }
    });

    for (const [type, what] of [[2, "request"], [4, "response"]] as const) {
      await t.step(`a ${what} with millions of headers that share one table`, async () => {
        const conn = await RawConn.connect(ctx.runner.socket);
        try {
          // A plugin that reads every header, and the bundled `say` that reads none.
          const echo = await prepare(
            conn,
            [["echo", '{"headers":true}']],
            `route#fuzz-many-${type}#1`,
          );
          for (const token of [echo, route.token]) {
            const where = `${what}, ${token === echo ? "echo" : "say"}`;
            await conn.write(rawFrame(type, hugeHeaderVector(4_000_000, token, type)));
            isError(await conn.frame(), 0);
            await conn.write(rawFrame(type, hugeHeaderVector(MAX_TABLE_VECTOR, token, type)));
            const reply = decodeReply(await conn.frame());
            if (type === 2 && token === echo) {
              ok(reply.rpc === 2 && reply.action === "stop", where);
              equal(reply.headers.length, MAX_TABLE_VECTOR, where);
            } else if (type === 2) {
              ok(
                reply.rpc === 2 && reply.action === "stop" && latin1(reply.body!) === route.body,
                where,
              );
            } else {
              ok(reply.rpc === 4, where);
              equal(reply.headers.length, MAX_TABLE_VECTOR, where);
            }
          }
        } finally {
          conn.close();
        }
      });
    }
    await t.step(
      "stalled clients and clients that never read hold only their own connections",
      async () => {
        const pid = ctx.runner.process.pid;
        const before = await openFds(pid);
        const echo = await (async () => {
          const conn = await RawConn.connect(ctx.runner.socket);
          try {
            return await prepare(conn, [["echo", '{"headers":true}']], "route#fuzz-stall#1");
          } finally {
            conn.close();
          }
        })();
        const request = rawFrame(2, encodeReqCall({ token: route.token }));
        // A reply of about 2 MiB, far more than a socket buffer holds.
        const big = rawFrame(2, hugeHeaderVector(MAX_TABLE_VECTOR, echo));
        const stalled: RawConn[] = [];
        for (let i = 0; i < 30; i++) {
          const conn = await RawConn.connect(ctx.runner.socket);
          stalled.push(conn);
          if (i % 3 === 0) await conn.write(request.subarray(0, 2));
          else if (i % 3 === 1) await conn.write(request.subarray(0, request.length - 3));
          else await conn.write(big);
        }
        // Others are served meanwhile (the witness too).
        const conn = await RawConn.connect(ctx.runner.socket);
        await conn.write(request);
        isStop(await conn.frame(), route.body);
        conn.close();
        ok((await openFds(pid)) >= before + 30);
        stalled.forEach((c) => c.close());
        // Everything they held is released.
        // Generous: on a loaded machine the runner may take a while to notice every close.
        const deadline = Date.now() + 20_000;
        while ((await openFds(pid)) > before + 2 && Date.now() < deadline) await pause(50);
        ok((await openFds(pid)) <= before + 2, `descriptors ${before} → ${await openFds(pid)}`);
      },
    );
  } finally {
    console.log(`witness: ${ctx.witnessCalls} calls, longest ${Math.round(ctx.witnessMaxMs)} ms`);
    await ctx.stop();
  }
});
