/**
 * A plugin's sandbox dies in the middle of calls (killed from outside, or by the runner for a
 * deadline overrun): those calls are answered within the deadline plus 50 ms, other plugins'
 * calls on other connections are untouched, confs being parsed at that moment still work, and
 * the plugin serves again after the restart.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import {
  decodeAsk,
  decodeReply,
  encodeExtraInfoResp,
  encodePrepareConf,
  encodeReqCall,
  latin1,
} from "../support/apisix.ts";
import { pause, RawConn, rawFrame } from "../support/raw_conn.ts";
import { startRunner } from "../support/runner.ts";
import { fixtureConfig } from "../fixtures/soak/plugins.ts";
import { Bystander, freeze, gone, reqCall, sandboxPid, tokenFor } from "./faults.ts";

const TIMEOUT_MS = 2000;

Deno.test("a sandbox killed in the middle of calls", async (t) => {
  const runner = await startRunner({
    config: fixtureConfig({ sleepy: { timeoutMs: TIMEOUT_MS }, vars: { timeoutMs: TIMEOUT_MS } }),
  });
  const setup = await RawConn.connect(runner.socket);
  const tokens = {
    say: await tokenFor(setup, "say", { body: "bystander" }),
    vars: await tokenFor(setup, "vars", {}),
    echo: await tokenFor(setup, "echo", { digest: true }),
    sleepy: await tokenFor(setup, "sleepy", { sleepMs: 1500 }),
  };
  await reqCall(setup, tokens.say);
  await reqCall(setup, tokens.vars);
  await reqCall(setup, tokens.echo);
  const bystander = new Bystander(runner.socket, tokens);
  try {
    await t.step(
      "killed from outside: its calls get SERVICE_UNAVAILABLE at once, others carry on",
      async () => {
        const pid = await sandboxPid(runner, "sleepy");
        const conns = await Promise.all(
          Array.from({ length: 5 }, () => RawConn.connect(runner.socket)),
        );
        const started = performance.now();
        const calls = conns.map((conn) =>
          reqCall(conn, tokens.sleepy).then((reply) => ({ reply, ms: performance.now() - started }))
        );
        await pause(200);
        Deno.kill(pid, "SIGKILL");
        for (const { reply, ms } of await Promise.all(calls)) {
          deepEqual(reply, { rpc: 0, code: 1 });
          ok(ms <= TIMEOUT_MS + 50, `answered after ${Math.round(ms)} ms`);
        }
        ok(await gone(pid));
        // The same route works again once the sandbox has restarted (its confs are replayed).
        const again = await reqCall(conns[0]!, tokens.sleepy, [["x-sleep-ms", "1"]]);
        deepEqual(
          again.rpc === 2 && again.action === "stop" && latin1(again.body!),
          "slept 1",
          JSON.stringify(again),
        );
        ok((await sandboxPid(runner, "sleepy", 1)) !== pid);
        conns.forEach((conn) => conn.close());
      },
    );

    await t.step(
      "a conf being parsed when the sandbox dies is parsed again, not dropped",
      async () => {
        const pid = await sandboxPid(runner, "sleepy", 1);
        const conn = await RawConn.connect(runner.socket);
        // Frozen, the sandbox cannot answer: the conf is still being parsed when it dies.
        await freeze(pid);
        await conn.write(
          rawFrame(1, encodePrepareConf([["sleepy", '{"sleepMs":3}']], "route#faults-race#pre#1")),
        );
        await pause(100);
        Deno.kill(pid, "SIGKILL");
        const prepared = decodeReply(await conn.frame());
        if (prepared.rpc !== 1) throw new Error(JSON.stringify(prepared));
        const reply = await reqCall(conn, prepared.token);
        deepEqual(
          reply.rpc === 2 && reply.action === "stop" && latin1(reply.body!),
          "slept 3",
          JSON.stringify(reply),
        );
        conn.close();
      },
    );

    await t.step(
      "killed by the runner for a deadline overrun: every call in it answered in time",
      async () => {
        const before = runner.lines.filter((l) => /sandbox plugin:sleepy ready/.test(l)).length;
        const conns = await Promise.all(
          Array.from({ length: 4 }, () => RawConn.connect(runner.socket)),
        );
        const started = performance.now();
        // Three calls that would sleep a minute, one that is done in 10 ms.
        const calls = conns.map((conn, i) =>
          reqCall(conn, tokens.sleepy, [["x-sleep-ms", i === 3 ? "10" : "60000"]])
            .then((reply) => ({ reply, ms: performance.now() - started }))
        );
        const replies = await Promise.all(calls);
        for (const { reply, ms } of replies.slice(0, 3)) {
          deepEqual(reply, { rpc: 0, code: 1 });
          ok(ms >= TIMEOUT_MS - 50 && ms <= TIMEOUT_MS + 50, `answered after ${Math.round(ms)} ms`);
        }
        const quick = replies[3]!.reply;
        deepEqual(quick.rpc === 2 && quick.action === "stop" && latin1(quick.body!), "slept 10");
        await sandboxPid(runner, "sleepy", before);
        const again = await reqCall(conns[0]!, tokens.sleepy, [["x-sleep-ms", "2"]]);
        deepEqual(again.rpc === 2 && again.action === "stop" && latin1(again.body!), "slept 2");
        conns.forEach((conn) => conn.close());
      },
    );

    await t.step(
      "killed while APISIX answers an ExtraInfo question: one error, the connection in step",
      async () => {
        const before = runner.lines.filter((l) => /sandbox plugin:vars ready/.test(l)).length;
        const pid = await sandboxPid(runner, "vars");
        const conn = await RawConn.connect(runner.socket);
        await conn.write(rawFrame(2, encodeReqCall({ id: 9, token: tokens.vars })));
        const ask = await conn.frame();
        equal(ask.type, 3);
        deepEqual(decodeAsk(ask.payload), { kind: "var", name: "remote_addr" });
        Deno.kill(pid, "SIGKILL");
        ok(await gone(pid));
        await pause(50);
        // APISIX answers the question it was asked, then reads the call's outcome.
        await conn.write(rawFrame(3, encodeExtraInfoResp("127.0.0.1")));
        deepEqual(decodeReply(await conn.frame()), { rpc: 0, code: 1 });
        equal(await conn.next(100), "timeout", "nothing else arrives");
        await sandboxPid(runner, "vars", before);
        const reply = await reqCall(conn, tokens.vars);
        ok(reply.rpc === 2 && reply.action === "rewrite", JSON.stringify(reply));
        conn.close();
      },
    );
  } finally {
    await bystander.stop();
    setup.close();
    await runner.stop();
  }
  deepEqual(bystander.failures, [], `a call of another plugin failed: ${bystander.failures}`);
  ok(bystander.calls > 0);
});

Deno.test("a call that waited for a free slot and then overran does not get its sandbox killed", async () => {
  const runner = await startRunner({
    config: fixtureConfig({ sleepy: { timeoutMs: 1000, concurrency: 1 } }),
  });
  const [a, b] = [await RawConn.connect(runner.socket), await RawConn.connect(runner.socket)];
  try {
    const token = await tokenFor(a, "sleepy", { sleepMs: 0 });
    await reqCall(a, token, [["x-sleep-ms", "1"]]);
    const pid = await sandboxPid(runner, "sleepy");
    // A holds the only slot for 600 ms; B waits for it, then has about 400 ms of its 1000.
    const first = reqCall(a, token, [["x-sleep-ms", "600"]]);
    await pause(20);
    const second = reqCall(b, token, [["x-sleep-ms", "600"]]);
    const replyA = await first;
    deepEqual(replyA.rpc === 2 && replyA.action === "stop" && latin1(replyA.body!), "slept 600");
    deepEqual(await second, { rpc: 0, code: 1 });
    // The sandbox that held B for 400 ms is not the one to blame: it lives on.
    const again = await reqCall(a, token, [["x-sleep-ms", "1"]]);
    deepEqual(again.rpc === 2 && again.action === "stop" && latin1(again.body!), "slept 1");
    equal(await sandboxPid(runner, "sleepy"), pid);
    ok(!runner.lines.some((line) => /killing sandbox/.test(line)), "the sandbox was killed");
  } finally {
    a.close();
    b.close();
    await runner.stop();
  }
});
