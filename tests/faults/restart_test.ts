/**
 * A runner killed with SIGKILL and started again on the same path (dev mode, or a crash):
 * the stale socket file is replaced, the old runner's sandboxes do not outlive it, and the
 * tokens it issued are answered CONF_TOKEN_NOT_FOUND, never mapped to another route's conf.
 */
import { deepEqual, ok } from "node:assert/strict";
import { latin1 } from "../support/apisix.ts";
import { RawConn } from "../support/raw_conn.ts";
import { type RunningRunner, startRunner } from "../support/runner.ts";
import { gone, reqCall, sandboxPid, tokenFor } from "./faults.ts";

const ROUTES = 50;

async function routes(runner: RunningRunner, label: string): Promise<number[]> {
  const conn = await RawConn.connect(runner.socket);
  try {
    const tokens: number[] = [];
    for (let i = 0; i < ROUTES; i++) {
      tokens.push(
        await tokenFor(conn, "say", { body: `${label} ${i}` }, `route#${i}#ext-plugin-pre-req#1`),
      );
    }
    const reply = await reqCall(conn, tokens[0]!);
    deepEqual(reply.rpc === 2 && reply.action === "stop" && latin1(reply.body!), `${label} 0`);
    return tokens;
  } finally {
    conn.close();
  }
}

async function kill(runner: RunningRunner): Promise<void> {
  runner.process.kill("SIGKILL");
  await runner.process.status;
}

Deno.test("SIGKILL and a restart on the same path", async () => {
  const dir = await Deno.makeTempDir({ prefix: "a6-restart-" });
  const socket = `${dir}/runner.sock`;
  const running: RunningRunner[] = [];
  try {
    const issued: number[][] = [];
    for (let generation = 0; generation < 3; generation++) {
      const runner = await startRunner({ socket });
      running.push(runner);
      if (generation > 0) {
        await runner.waitForLine(/removed stale file/);
        // Every token of every earlier generation is unknown here, before and after this
        // generation prepared the same routes (with other bodies).
        const conn = await RawConn.connect(socket);
        for (const round of ["before", "after"]) {
          if (round === "after") issued.push(await routes(runner, `generation ${generation}`));
          for (const old of issued.slice(0, generation).flat()) {
            deepEqual(await reqCall(conn, old), { rpc: 0, code: 2 }, `old token ${old} ${round}`);
          }
        }
        conn.close();
      } else {
        issued.push(await routes(runner, `generation ${generation}`));
      }
      const sandbox = await sandboxPid(runner, "say");
      await kill(runner);
      ok((await Deno.lstat(socket)).isSocket, "the killed runner leaves its socket file behind");
      ok(await gone(sandbox), "the sandbox outlived its runner");
    }
    const all = issued.flat();
    ok(new Set(all).size === all.length, "two generations issued the same token");
    ok(new Set(issued.map((tokens) => tokens[0])).size === issued.length, "the same first token");
  } finally {
    for (const runner of running) await runner.stop().catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("a stale regular file on the socket path is replaced", async () => {
  const dir = await Deno.makeTempDir({ prefix: "a6-stale-" });
  const socket = `${dir}/runner.sock`;
  await Deno.writeTextFile(socket, "left over");
  const runner = await startRunner({ socket });
  try {
    ok((await Deno.lstat(socket)).isSocket);
    const conn = await RawConn.connect(socket);
    const reply = await reqCall(conn, await tokenFor(conn, "say", { body: "fresh" }));
    deepEqual(reply.rpc === 2 && reply.action === "stop" && latin1(reply.body!), "fresh");
    conn.close();
  } finally {
    await runner.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
