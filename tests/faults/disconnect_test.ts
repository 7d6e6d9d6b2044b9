/**
 * A client that disconnects in the middle of an ExtraInfo exchange (PROTOCOL.md §8 case 48):
 * the call is abandoned quietly, the plugin's call ends in its sandbox, no concurrency slot,
 * descriptor or log line is left behind, and other connections do not notice.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { decodeAsk, encodeExtraInfoResp, encodeReqCall, latin1 } from "../support/apisix.ts";
import { pause, RawConn, rawFrame } from "../support/raw_conn.ts";
import { startRunner } from "../support/runner.ts";
import { fixtureConfig } from "../fixtures/soak/plugins.ts";
import { openFds, reqCall, tokenFor } from "./faults.ts";

const ABANDONED = 40;

Deno.test("clients that disconnect in the middle of an ExtraInfo exchange", async () => {
  // One call at a time: a slot leaked by an abandoned call would block every later one.
  const runner = await startRunner({
    config: fixtureConfig({ vars: { concurrency: 1 }, echo: { concurrency: 1 } }),
  });
  const setup = await RawConn.connect(runner.socket);
  try {
    const vars = await tokenFor(setup, "vars", {});
    const stats = await tokenFor(setup, "vars", { names: [] });
    const digest = await tokenFor(setup, "echo", { digest: true });
    const say = await tokenFor(setup, "say", { body: "bystander" });
    await reqCall(setup, vars);
    await reqCall(setup, digest, [], "body");
    const pid = runner.process.pid;
    const fdsBefore = await openFds(pid);
    const linesBefore = runner.lines.length;

    for (let i = 0; i < ABANDONED; i++) {
      const conn = await RawConn.connect(runner.socket);
      const kind = i % 4;
      await conn.write(
        rawFrame(2, encodeReqCall({ id: i, token: kind < 2 ? vars : digest, method: 2 })),
      );
      const ask = await conn.frame();
      equal(ask.type, 3);
      if (kind === 1) {
        // One question answered, then gone while the second is asked.
        deepEqual(decodeAsk(ask.payload), { kind: "var", name: "remote_addr" });
        await conn.write(rawFrame(3, encodeExtraInfoResp("127.0.0.1")));
        equal((await conn.frame()).type, 3);
      } else if (kind === 3) {
        // Gone halfway through a large answer.
        await conn.write(
          rawFrame(3, encodeExtraInfoResp(new Uint8Array(100_000))).subarray(0, 50_000),
        );
      }
      conn.close();
      // Meanwhile another connection is served as usual.
      const reply = await reqCall(setup, say);
      ok(reply.rpc === 2 && reply.action === "stop" && latin1(reply.body!) === "bystander");
    }

    // The plugins take calls again at once: no slot is held by an abandoned call.
    const fresh = await RawConn.connect(runner.socket);
    const varsReply = await reqCall(fresh, vars, [], "v", 5000);
    ok(varsReply.rpc === 2 && varsReply.action === "rewrite", JSON.stringify(varsReply));
    const digestReply = await reqCall(fresh, digest, [], "x", 5000);
    ok(digestReply.rpc === 2 && digestReply.action === "stop", JSON.stringify(digestReply));
    // Inside the sandbox every abandoned call has ended.
    const stat = await reqCall(fresh, stats, [["x-stats", "1"]]);
    if (stat.rpc !== 2 || stat.action !== "stop") throw new Error(JSON.stringify(stat));
    const counts = JSON.parse(latin1(stat.body!));
    equal(counts.inflight, 0, JSON.stringify(counts));
    equal(counts.failed, ABANDONED / 2, JSON.stringify(counts));
    fresh.close();

    // No descriptor left behind.
    await pause(100);
    const fdsAfter = await openFds(pid);
    ok(fdsAfter <= fdsBefore + 1, `descriptors ${fdsBefore} → ${fdsAfter}`);
    // Quietly: nothing above debug (a client going away is normal for APISIX).
    const loud = runner.lines.slice(linesBefore).filter((line) =>
      /level=(warning|error|fatal)/.test(line)
    );
    deepEqual(loud, []);
  } finally {
    setup.close();
    await runner.stop();
  }
});
