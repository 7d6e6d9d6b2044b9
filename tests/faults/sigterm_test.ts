/**
 * SIGTERM with calls in flight (APISIX's reload, PROTOCOL.md §1.4): the calls finish, the
 * process exits within 1 s, and the socket file that a newer runner created on the same path
 * meanwhile survives.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { latin1 } from "../support/apisix.ts";
import { pause, RawConn } from "../support/raw_conn.ts";
import { startRunner } from "../support/runner.ts";
import { fixtureConfig } from "../fixtures/soak/plugins.ts";
import { reqCall, tokenFor } from "./faults.ts";

/** The runner gives up on calls after 1 s of grace; a busy 2-core machine adds its own delay. */
const EXIT_BOUND_MS = 1500;

Deno.test("SIGTERM with calls in flight, a newer runner on the same path", async () => {
  const dir = await Deno.makeTempDir({ prefix: "a6-sigterm-" });
  const socket = `${dir}/runner.sock`;
  const old = await startRunner({ socket, config: fixtureConfig() });
  let newer: Awaited<ReturnType<typeof startRunner>> | null = null;
  try {
    const conns = await Promise.all(Array.from({ length: 5 }, () => RawConn.connect(socket)));
    const idle = await RawConn.connect(socket);
    const token = await tokenFor(conns[0]!, "sleepy", { sleepMs: 300 });
    await reqCall(conns[0]!, token, [["x-sleep-ms", "1"]]);

    // The reload: the new runner replaces the socket file while the old one still serves.
    newer = await startRunner({ socket, config: fixtureConfig() });
    // (The socket answered before the newer runner bound it: the old one still listens there.)
    await newer.waitForLine(/listening on/);
    const inode = (await Deno.stat(socket)).ino;

    const calls = conns.map((conn) => reqCall(conn, token));
    await pause(50);
    const stopping = old.stop();
    for (const reply of await Promise.all(calls)) {
      deepEqual(reply.rpc === 2 && reply.action === "stop" && latin1(reply.body!), "slept 300");
    }
    equal(await idle.next(1000), "eof", "an idle connection is closed");
    const { status, ms } = await stopping;
    equal(status.code, 0);
    // The runner's own bound is 1 s; the rest is room for a loaded machine's scheduling.
    ok(ms < EXIT_BOUND_MS, `exit took ${Math.round(ms)} ms`);
    conns.forEach((conn) => conn.close());
    idle.close();

    // The newer runner's socket file is still there, and it answers.
    equal((await Deno.stat(socket)).ino, inode);
    const conn = await RawConn.connect(socket);
    const say = await tokenFor(conn, "say", { body: "newer" });
    const reply = await reqCall(conn, say);
    deepEqual(reply.rpc === 2 && reply.action === "stop" && latin1(reply.body!), "newer");
    conn.close();
  } finally {
    await old.stop().catch(() => {});
    await newer?.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("SIGTERM with a call longer than the grace period: still gone within 1 s", async () => {
  const runner = await startRunner({ config: fixtureConfig() });
  const conn = await RawConn.connect(runner.socket);
  try {
    const token = await tokenFor(conn, "sleepy", { sleepMs: 5000 });
    const call = reqCall(conn, token).then((reply) => reply, (error) => error as Error);
    await pause(100);
    const { status, ms } = await runner.stop();
    equal(status.code, 0);
    // The runner's own bound is 1 s; the rest is room for a loaded machine's scheduling.
    ok(ms < EXIT_BOUND_MS, `exit took ${Math.round(ms)} ms`);
    // APISIX sees the connection end (and answers 503), as it would for a killed runner.
    const outcome = await call;
    ok(outcome instanceof Error, `got ${JSON.stringify(outcome)}`);
  } finally {
    conn.close();
  }
});
