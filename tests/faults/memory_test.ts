/**
 * A plugin that keeps memory outside the V8 heap (ArrayBuffers) is stopped by the resident-memory
 * watchdog at its limit (memoryMb plus the runtime's share), its calls are answered, and it
 * serves again from a fresh sandbox. Before the sandbox reported its own memory, the watchdog
 * read /proc/<pid>, which Deno refuses without --allow-all: the sandbox grew without bound.
 */
import { ok } from "node:assert/strict";
import { decodeReply, encodePrepareConf, latin1 } from "../support/apisix.ts";
import { pause, RawConn, rawFrame } from "../support/raw_conn.ts";
import { startRunner } from "../support/runner.ts";
import { reqCall, tokenFor } from "./faults.ts";

Deno.test("memory outside the V8 heap is bounded by the watchdog", async () => {
  const runner = await startRunner({
    config: {
      plugins: {
        hoard: { module: new URL("./plugins/hoard.ts", import.meta.url).pathname, memoryMb: 64 },
      },
    },
  });
  const conn = await RawConn.connect(runner.socket);
  try {
    const token = await tokenFor(conn, "hoard", {});
    const outcomes: string[] = [];
    // 64 MiB + 96 MiB for the runtime: the fourth 48 MiB block is over the limit.
    for (let i = 0; i < 8 && !runner.lines.some((l) => /resident memory/.test(l)); i++) {
      const reply = await reqCall(conn, token);
      outcomes.push(
        reply.rpc === 2 && reply.action === "stop" ? latin1(reply.body!) : JSON.stringify(reply),
      );
      await pause(600);
    }
    const line = await runner.waitForLine(/resident memory \d+ MiB exceeded 160 MiB/, 5000);
    ok(line, outcomes.join("; "));
    // A fresh sandbox serves the plugin again.
    const reply = await reqCall(conn, token);
    ok(
      reply.rpc === 2 && reply.action === "stop" && latin1(reply.body!) === "holding 48 MiB",
      JSON.stringify(reply),
    );
  } finally {
    conn.close();
    await runner.stop();
  }
});

Deno.test("a conf whose parseConf brings its sandbox down fails after the second death", async () => {
  const runner = await startRunner({
    config: {
      plugins: {
        hoard: {
          module: new URL("./plugins/hoard.ts", import.meta.url).pathname,
          memoryMb: 64,
          timeoutMs: 20_000,
        },
      },
    },
  });
  const conn = await RawConn.connect(runner.socket);
  try {
    const good = await tokenFor(conn, "hoard", {});
    const started = performance.now();
    // Well before the 20 s deadline: one death is forgiven (it may be another call's fault),
    // two are not. The plugin fails closed, so the route gets no token without it: APISIX
    // answers this request 503 and prepares the conf again on the next one.
    const route = `route#faults-${crypto.randomUUID()}#ext-plugin-pre-req#1`;
    await conn.write(
      rawFrame(1, encodePrepareConf([["hoard", JSON.stringify({ parseMb: 300 })]], route)),
    );
    const poisoned = decodeReply(await conn.frame(20_000));
    ok(poisoned.rpc === 0 && poisoned.code === 1, JSON.stringify(poisoned));
    ok(performance.now() - started < 10_000);
    const deaths = runner.lines.filter((l) => /sandbox plugin:hoard ended/.test(l)).length;
    ok(deaths === 2, `${deaths} deaths`);
    // The plugin's other routes work in the next sandbox.
    const reply = await reqCall(conn, good);
    ok(reply.rpc === 2 && reply.action === "stop", JSON.stringify(reply));
  } finally {
    conn.close();
    await runner.stop();
  }
});
