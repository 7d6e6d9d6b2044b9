/**
 * Fuzz targets that talk to a real runner process over its socket, the way APISIX does, with a
 * witness connection doing PrepareConf + HTTPReqCall in a loop beside them: whatever one
 * connection sends, every frame gets the answer the protocol prescribes, a broken connection is
 * closed alone, and the witness never notices.
 *
 * @module
 */
import fc from "fast-check";
import { deepEqual, equal, ok } from "node:assert/strict";
import { isDroppedResponseHeader } from "../../api/reply.ts";
import {
  decodeAsk,
  decodeReply,
  encodeExtraInfoResp,
  encodePrepareConf,
  encodeReqCall,
  encodeRespCall,
  type Entry,
  latin1,
  type Reply,
} from "../support/apisix.ts";
import { concat, pause, RawConn, type RawFrame, rawFrame } from "../support/raw_conn.ts";
import { startRunner } from "../support/runner.ts";
import { fixtureConfig } from "../fixtures/soak/plugins.ts";
import type { FuzzTarget } from "./inproc_targets.ts";
import {
  byteStream,
  entry,
  type Expected,
  expectedReplies,
  maxAnswerBody,
  mutate,
  mutations,
  pseudoRandomBytes,
  SHAPES,
  validPayload,
  verifies,
} from "./messages.ts";

/** How long a test waits for any one frame before it calls the runner hung. */
export const FRAME_TIMEOUT_MS = 10_000;

/** The longest a witness call may take before the test calls the runner stalled. */
export const WITNESS_STALL_MS = 3000;

/** A route on the runner under test: its key, `say` body and token. */
export interface Route {
  key: string;
  body: string;
  token: number;
}

/** What the socket targets need of a runner process. */
export interface TestRunner {
  socket: string;
  process: Deno.ChildProcess;
  lines: string[];
  stop(): Promise<unknown>;
}

/** A runner under fuzz, its routes, and a witness connection that must never fail. */
export class SocketContext {
  readonly runner: TestRunner;
  readonly routes: Route[];
  readonly digestToken: number;
  readonly varsToken: number;
  readonly statsToken: number;
  readonly known: Set<number>;
  witnessCalls = 0;
  witnessFailures: string[] = [];
  witnessMaxMs = 0;
  /**
   * Whether witness calls count toward {@linkcode witnessMaxMs}: off while this process runs
   * long synchronous work of its own (in-process fuzz batches), which delays the witness too.
   */
  measuring = true;
  #stopWitness = false;
  #witness: Promise<void> | null = null;

  private constructor(
    runner: TestRunner,
    routes: Route[],
    tokens: { digest: number; vars: number; stats: number },
  ) {
    this.runner = runner;
    this.routes = routes;
    this.digestToken = tokens.digest;
    this.varsToken = tokens.vars;
    this.statsToken = tokens.stats;
    this.known = new Set([...routes.map((r) => r.token), ...Object.values(tokens)]);
  }

  /**
   * Starts a runner with the fixture plugins (with `start`, given the configuration), prepares
   * routes and starts the witness.
   */
  static async start(
    start: (config: unknown) => Promise<TestRunner> = (config) => startRunner({ config }),
  ): Promise<SocketContext> {
    const runner = await start(fixtureConfig());
    try {
      const conn = await RawConn.connect(runner.socket);
      const routes: Route[] = [];
      for (let i = 0; i < 4; i++) {
        const key = `route#fuzz-${i}#ext-plugin-pre-req#1`;
        const body = `route ${i}`;
        routes.push({
          key,
          body,
          token: await prepare(conn, [["say", JSON.stringify({ body })]], key),
        });
      }
      const tokens = {
        digest: await prepare(conn, [["echo", '{"digest":true}']], "route#fuzz-digest#pre#1"),
        vars: await prepare(conn, [["vars", "{}"]], "route#fuzz-vars#pre#1"),
        stats: await prepare(conn, [["vars", '{"names":[]}']], "route#fuzz-stats#pre#1"),
      };
      conn.close();
      const context = new SocketContext(runner, routes, tokens);
      context.#witness = context.#runWitness();
      return context;
    } catch (error) {
      await runner.stop();
      throw error;
    }
  }

  async #runWitness(): Promise<void> {
    let conn: RawConn | null = null;
    let n = 0;
    while (!this.#stopWitness) {
      const started = performance.now();
      try {
        conn ??= await RawConn.connect(this.runner.socket);
        const route = this.routes[n++ % this.routes.length]!;
        const token = await prepare(
          conn,
          [["say", JSON.stringify({ body: route.body })]],
          route.key,
        );
        if (token !== route.token) throw new Error(`PrepareConf gave ${token}, not ${route.token}`);
        const reply = await call(conn, 2, encodeReqCall({ id: n, token }));
        if (reply.rpc !== 2 || reply.action !== "stop" || latin1(reply.body!) !== route.body) {
          throw new Error(`unexpected reply ${JSON.stringify(reply)}`);
        }
        this.witnessCalls++;
      } catch (error) {
        this.witnessFailures.push(String(error));
        conn?.close();
        conn = null;
      }
      if (this.measuring) {
        this.witnessMaxMs = Math.max(this.witnessMaxMs, performance.now() - started);
      }
      await pause(3);
    }
    conn?.close();
  }

  /** Throws unless the runner process is still running. */
  async assertAlive(): Promise<void> {
    const exited = await Promise.race([this.runner.process.status, pause(0).then(() => null)]);
    if (exited) {
      throw new Error(
        `the runner exited (${JSON.stringify(exited)}):\n${
          this.runner.lines.slice(-30).join("\n")
        }`,
      );
    }
  }

  /** Stops the witness and the runner; throws if the witness saw a failure. */
  async stop(): Promise<void> {
    this.#stopWitness = true;
    await this.#witness;
    await this.assertAlive().finally(() => this.runner.stop());
    deepEqual(this.witnessFailures, [], "the witness connection failed");
    ok(this.witnessCalls > 0, "the witness made no calls");
    // Normally well under 200 ms; seconds mean one connection's input stalled the others.
    ok(
      this.witnessMaxMs < WITNESS_STALL_MS,
      `a witness call took ${Math.round(this.witnessMaxMs)} ms`,
    );
  }
}

/** PrepareConf on `conn`; resolves to the token. */
export async function prepare(conn: RawConn, conf: Entry[] | null, key: string): Promise<number> {
  await conn.write(rawFrame(1, encodePrepareConf(conf, key)));
  const reply = decodeReply(await conn.frame(FRAME_TIMEOUT_MS));
  if (reply.rpc !== 1) throw new Error(`PrepareConf failed: ${JSON.stringify(reply)}`);
  return reply.token;
}

/** A call without ExtraInfo; resolves to the decoded reply. */
export async function call(conn: RawConn, type: 2 | 4, payload: Uint8Array): Promise<Reply> {
  await conn.write(rawFrame(type, payload));
  return decodeReply(await conn.frame(FRAME_TIMEOUT_MS));
}

/** Checks a reply frame against what the oracle expects. */
export function matches(frame: RawFrame, expected: Expected, where: string): void {
  equal(frame.type, expected.type, `${where}: RPC type`);
  ok(frame.payload.length >= 12, `${where}: payload of ${frame.payload.length} bytes`);
  if (expected.type === 0) {
    const reply = decodeReply(frame);
    deepEqual(reply, { rpc: 0, code: expected.code }, where);
  }
}

/** Reads frames until end of stream; fails on anything beyond `expected`. */
async function expectThenEof(conn: RawConn, expected: readonly Expected[]): Promise<void> {
  for (let i = 0; i < expected.length; i++) {
    const next = await conn.next(FRAME_TIMEOUT_MS);
    if (next === "eof" || next === "timeout") {
      throw new Error(`reply ${i} of ${expected.length}: ${next}`);
    }
    matches(next, expected[i]!, `reply ${i}`);
  }
  const end = await conn.next(FRAME_TIMEOUT_MS);
  if (end !== "eof") {
    throw new Error(
      end === "timeout" ? "the runner kept the connection open" : `extra frame ${end.type}`,
    );
  }
}

const cuts = (length: number) =>
  fc.uniqueArray(fc.integer({ min: 1, max: Math.max(1, length - 1) }), { maxLength: 12 });

/**
 * Random byte streams (random frames, valid and damaged messages, zero-length payloads, bytes
 * that are no frame at all) sent in random pieces, then the write side closed: the runner
 * answers every complete frame as the oracle says, then closes.
 */
export const socketByteStreams: FuzzTarget<SocketContext> = {
  name: "socket: random byte streams get the prescribed answers, then a clean close",
  ciRuns: 40,
  property: (settings, ctx) =>
    fc.asyncProperty(
      byteStream(settings).chain((stream) => fc.tuple(fc.constant(stream), cuts(stream.length))),
      async ([stream, splits]) => {
        const { replies, knownTokenUsed } = expectedReplies(stream, ctx.known);
        fc.pre(!knownTokenUsed);
        const conn = await RawConn.connect(ctx.runner.socket);
        try {
          await conn.writeSplit(stream, splits, 1);
          await conn.closeWrite();
          await expectThenEof(conn, replies);
        } finally {
          conn.close();
        }
        await ctx.assertAlive();
      },
    ),
};

/** One step of an exchange script and what it must get. */
interface Step {
  bytes: Uint8Array;
  check(frame: RawFrame, where: string): void;
}

const invalid = (type: 1 | 2 | 4) =>
  fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    validPayload.chain(({ payload }) =>
      mutations(payload.length).map((list) => mutate(payload, list))
    ),
  ).filter((payload) => !verifies(payload, SHAPES[type]));

const errorStep = (bytes: Uint8Array, code: number): Step => ({
  bytes,
  check: (frame, where) => deepEqual(decodeReply(frame), { rpc: 0, code }, where),
});

const steps = (ctx: SocketContext): fc.Arbitrary<Step> =>
  fc.oneof(
    fc.constantFrom(...ctx.routes).map((route): Step => ({
      bytes: rawFrame(
        1,
        encodePrepareConf([["say", JSON.stringify({ body: route.body })]], route.key),
      ),
      check: (frame, where) => deepEqual(decodeReply(frame), { rpc: 1, token: route.token }, where),
    })),
    fc.tuple(
      fc.constantFrom(...ctx.routes),
      fc.nat({ max: 0xffff_ffff }),
      fc.array(entry(), { maxLength: 30 }),
    )
      .map(([route, id, headers]): Step => ({
        bytes: rawFrame(2, encodeReqCall({ id, token: route.token, headers })),
        check(frame, where) {
          const reply = decodeReply(frame);
          if (reply.rpc !== 2 || reply.action !== "stop") {
            throw new Error(
              `${where}: ${JSON.stringify(reply)}`,
            );
          }
          equal(reply.id, id, where);
          equal(latin1(reply.body!), route.body, where);
        },
      })),
    fc.tuple(
      fc.constantFrom(...ctx.routes),
      fc.nat({ max: 0xffff_ffff }),
      fc.array(entry(), { maxLength: 40 }),
    )
      .map(([route, id, headers]): Step => ({
        bytes: rawFrame(4, encodeRespCall({ id, status: 200, token: route.token, headers })),
        check(frame, where) {
          // `say` has no responseFilter: the upstream headers come back complete, repeated names
          // and byte values included, without hop-by-hop ones and Content-Length.
          const reply = decodeReply(frame);
          if (reply.rpc !== 4) throw new Error(`${where}: ${JSON.stringify(reply)}`);
          equal(reply.id, id, where);
          deepEqual(
            reply.headers,
            headers.filter(([name]) => !isDroppedResponseHeader(name)).map((
              [n, v],
            ) => [n, v ?? ""]),
            where,
          );
        },
      })),
    fc.nat({ max: 0xffff_ffff }).filter((t) => !ctx.known.has(t)).map((token) =>
      errorStep(rawFrame(2, encodeReqCall({ token })), 2)
    ),
    fc.nat(255).filter((t) => t < 1 || t > 4).map((type) =>
      errorStep(rawFrame(type, encodeExtraInfoResp(null)), 0)
    ),
    fc.option(fc.uint8Array({ maxLength: 64 }), { nil: null }).map((result) =>
      errorStep(rawFrame(3, encodeExtraInfoResp(result)), 0)
    ),
    fc.constantFrom(1 as const, 2 as const, 4 as const).chain((type) =>
      invalid(type).map((payload) => errorStep(rawFrame(type, payload), 0))
    ),
  );

/**
 * Valid exchanges mixed with errors that leave the framing intact, sent as one stream in random
 * pieces: each frame gets exactly its answer, in order, and the connection stays usable.
 */
export const socketExchanges: FuzzTarget<SocketContext> = {
  name: "socket: exchanges and recoverable errors in one stream get their answers in order",
  ciRuns: 40,
  property: (_settings, ctx) =>
    fc.asyncProperty(
      fc.array(steps(ctx), { minLength: 1, maxLength: 12 }).chain((list) => {
        const stream = concat(list.map((s) => s.bytes));
        return fc.tuple(fc.constant(list), fc.constant(stream), cuts(stream.length));
      }),
      async ([list, stream, splits]) => {
        const conn = await RawConn.connect(ctx.runner.socket);
        try {
          const writing = conn.writeSplit(stream, splits, 1);
          for (let i = 0; i < list.length; i++) {
            list[i]!.check(
              await conn.frame(FRAME_TIMEOUT_MS),
              `step ${i}`,
            );
          }
          await writing;
          // Still usable, and quiet: nothing arrives that was not asked for.
          const route = ctx.routes[0]!;
          const reply = await call(conn, 2, encodeReqCall({ token: route.token }));
          ok(reply.rpc === 2 && reply.action === "stop" && latin1(reply.body!) === route.body);
          equal(await conn.next(50), "timeout");
        } finally {
          conn.close();
        }
        await ctx.assertAlive();
      },
    ),
};

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Bodies of any size up to the limit, answered in random pieces: the plugin sees exactly the
 * bytes sent (it returns their SHA-256).
 */
export const socketBodies: FuzzTarget<SocketContext> = {
  name: "socket: ExtraInfo bodies in random pieces reach the plugin byte for byte",
  ciRuns: 25,
  property: (settings, ctx) =>
    fc.asyncProperty(
      fc.oneof(
        { weight: 4, arbitrary: fc.nat(2000) },
        { weight: 2, arbitrary: fc.nat(Math.min(maxAnswerBody(settings.maxPayload), 300_000)) },
        { weight: 1, arbitrary: fc.constant(maxAnswerBody(settings.maxPayload)) },
      ).chain((size) =>
        fc.tuple(
          fc.constant(size),
          fc.nat(),
          fc.boolean(),
          cuts(size + 64),
          fc.nat({ max: 0xffff_ffff }),
        )
      ),
      async ([size, seed, absent, splits, id]) => {
        const body = absent && size === 0 ? null : pseudoRandomBytes(size, seed);
        const conn = await RawConn.connect(ctx.runner.socket);
        try {
          await conn.write(rawFrame(2, encodeReqCall({ id, token: ctx.digestToken, method: 2 })));
          const ask = await conn.frame(FRAME_TIMEOUT_MS);
          equal(ask.type, 3);
          deepEqual(decodeAsk(ask.payload), { kind: "reqBody" });
          await conn.writeSplit(rawFrame(3, encodeExtraInfoResp(body)), splits, 0);
          const reply = decodeReply(await conn.frame(FRAME_TIMEOUT_MS));
          if (reply.rpc !== 2 || reply.action !== "stop") throw new Error(JSON.stringify(reply));
          equal(reply.id, id);
          const headers = Object.fromEntries(reply.headers);
          equal(headers["x-length"], String(size));
          equal(
            headers["x-digest"],
            await sha256Hex((body ?? new Uint8Array()) as Uint8Array<ArrayBuffer>),
          );
        } finally {
          conn.close();
        }
        await ctx.assertAlive();
      },
    ),
};

/** What a client sends instead of a proper ExtraInfo answer. */
type WrongAnswer =
  | { kind: "frame"; type: number; payload: Uint8Array }
  | { kind: "cut"; bytes: Uint8Array; keep: number };

const wrongAnswer: fc.Arbitrary<WrongAnswer> = fc.oneof(
  validPayload.filter(({ type }) => type !== 3).map(({ type, payload }) => ({
    kind: "frame" as const,
    type,
    payload,
  })),
  fc.tuple(fc.nat(255).filter((t) => t !== 3), fc.uint8Array({ maxLength: 100 })).map((
    [type, payload],
  ) => ({ kind: "frame" as const, type, payload })),
  invalidAnswer().map((payload) => ({ kind: "frame" as const, type: 3, payload })),
  fc.option(fc.uint8Array({ maxLength: 200 }), { nil: null }).chain((result) => {
    const bytes = rawFrame(3, encodeExtraInfoResp(result));
    return fc.nat(bytes.length - 1).map((keep) => ({ kind: "cut" as const, bytes, keep }));
  }),
);

function invalidAnswer(): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.uint8Array({ maxLength: 100 }),
    fc.option(fc.uint8Array({ maxLength: 64 }), { nil: null }).chain((result) => {
      const payload = encodeExtraInfoResp(result);
      return mutations(payload.length).map((list) => mutate(payload, list));
    }),
  ).filter((payload) => !verifies(payload, SHAPES[3]));
}

/** The `vars` plugin's count of calls still running in its sandbox. */
export async function varsInflight(ctx: SocketContext): Promise<number> {
  const conn = await RawConn.connect(ctx.runner.socket);
  try {
    const reply = await call(
      conn,
      2,
      encodeReqCall({ token: ctx.statsToken, headers: [["x-stats", "1"]] }),
    );
    if (reply.rpc !== 2 || reply.action !== "stop") throw new Error(JSON.stringify(reply));
    return JSON.parse(latin1(reply.body!)).inflight;
  } finally {
    conn.close();
  }
}

/** Waits until no `vars` call is running in the sandbox; fails after `ms`. */
export async function assertNoVarsLeft(ctx: SocketContext, ms = 3000): Promise<void> {
  const deadline = performance.now() + ms;
  let inflight = await varsInflight(ctx);
  while (inflight !== 0 && performance.now() < deadline) {
    await pause(20);
    inflight = await varsInflight(ctx);
  }
  equal(inflight, 0, "calls abandoned by the runner still run in the sandbox");
}

/**
 * A wrong answer to an ExtraInfo question (another RPC type, a malformed answer, a connection
 * closed halfway through the answer): exactly one BAD_REQUEST and a close, or (when the client
 * is gone) a quiet close; the plugin's call ends in the sandbox too.
 */
export const socketWrongAnswers: FuzzTarget<SocketContext> = {
  name: "socket: a wrong ExtraInfo answer closes only that connection, and the call ends",
  ciRuns: 30,
  property: (_settings, ctx) =>
    fc.asyncProperty(wrongAnswer, fc.nat({ max: 0xffff_ffff }), async (answer, id) => {
      const conn = await RawConn.connect(ctx.runner.socket);
      try {
        await conn.write(rawFrame(2, encodeReqCall({ id, token: ctx.varsToken })));
        const ask = await conn.frame(FRAME_TIMEOUT_MS);
        equal(ask.type, 3);
        if (answer.kind === "frame") {
          await conn.write(rawFrame(answer.type, answer.payload));
          await expectThenEof(conn, [{ type: 0, code: 0 }]);
        } else {
          await conn.write(answer.bytes.subarray(0, answer.keep));
          await conn.closeWrite();
          await expectThenEof(conn, []);
        }
      } finally {
        conn.close();
      }
      await assertNoVarsLeft(ctx);
      await ctx.assertAlive();
    }),
};

/** Every socket target. */
export const SOCKET_TARGETS: readonly FuzzTarget<SocketContext>[] = [
  socketByteStreams,
  socketExchanges,
  socketBodies,
  socketWrongAnswers,
];
