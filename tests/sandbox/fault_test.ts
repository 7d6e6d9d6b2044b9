/**
 * The fault suite: plugins that loop, exhaust memory, flood, hang, throw, or answer too much.
 * Each case ends in "plugin killed, runner alive" (the call is answered by the plugin's policy
 * in time, the runner logs the cause, the counters move, the sandbox is restarted and the
 * plugin serves again with the same conf token) or in a contained failure, while bundled `say`
 * on another route and connection keeps answering during and after. One runner for all cases.
 *
 * @module
 */
import { deepEqual, equal, match, notEqual, ok } from "node:assert/strict";
import type { ApisixConn, Reply } from "../support/apisix.ts";
import { sleep, startBystander, startHarness, stopBody, suitePlugin } from "./harness.ts";

const CLOSED: Reply = { rpc: 0, code: 1 };

const own = suitePlugin;

const CONFIG = {
  bundled: false,
  plugins: {
    say: {},
    loop: own("loop.ts", { timeoutMs: 300 }),
    never_settles: own("never_settles.ts", { timeoutMs: 300, failure: "open" }),
    heap_bomb: own("heap_bomb.ts", { memoryMb: 64, timeoutMs: 20_000 }),
    buffer_bomb: own("buffer_bomb.ts", { memoryMb: 64, timeoutMs: 20_000, failure: "open" }),
    log_flood: own("log_flood.ts", { timeoutMs: 20_000 }),
    // Room for its write backlog on a slow machine: this case is the runner's limit, not the
    // sandbox's memory watch.
    stray_flood: own("stray_flood.ts", { memoryMb: 1024, timeoutMs: 20_000 }),
    stdio_flood: own("stdio_flood.ts", { timeoutMs: 300 }),
    throws: own("throws.ts"),
    unhandled: own("unhandled.ts"),
    big_reply: own("big_reply.ts"),
    big_reply_inline: own("big_reply_inline.ts", { isolation: "inline" }),
    crash_loop: own("crash_loop.ts", { memoryMb: 32, timeoutMs: 20_000, failure: "open" }),
    slow_conf: own("slow_conf.ts"),
    inline_hang: own("inline_hang.ts", { isolation: "inline", timeoutMs: 300 }),
    slot_spoof: own("slot_spoof.ts", { isolation: "shared", group: "spoof" }),
    broadcast_victim: own("broadcast_victim.ts", { isolation: "shared", group: "spoof" }),
  },
};

/** The time from writing a call to reading its reply. */
async function timed(conn: ApisixConn, token: number, go: boolean) {
  const started = performance.now();
  const { reply } = await conn.reqCall({ id: 9, token, headers: go ? [["x-go", "1"]] : [] });
  return { reply, ms: performance.now() - started };
}

Deno.test({
  name: "fault suite: a faulty plugin costs only its own calls",
  // The runner is shared by every case; its timers and sockets outlive single steps.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const h = await startHarness(CONFIG);
    const say = await startBystander(h);
    const conns: ApisixConn[] = [];
    const servingAgainMs: number[] = [];

    async function route(plugin: string): Promise<{ conn: ApisixConn; token: number }> {
      const conn = await h.connect();
      conns.push(conn);
      const token = await conn.token([[plugin, "{}"]]);
      // The sandbox is up and the plugin answers before the fault (on a loaded machine a first
      // call may overrun a 300 ms deadline: the policy answer, then "alive").
      const policy = h.host(plugin).settings.failure === "open"
        ? { rpc: 2, id: 9, action: "none" } as Reply
        : CLOSED;
      await servesAgain(conn, token, policy);
      return { conn, token };
    }

    /** Calls with `token` until the plugin answers "alive" again; the policy answer meanwhile. */
    async function servesAgain(conn: ApisixConn, token: number, policy: Reply, since?: number) {
      for (let i = 0; i < 200; i++) {
        const { reply } = await timed(conn, token, false);
        if (reply.rpc === 2 && reply.action === "stop") {
          equal(stopBody(reply), "alive");
          if (since !== undefined) servingAgainMs.push(performance.now() - since);
          return;
        }
        // Never CONF_TOKEN_NOT_FOUND, never a skipped plugin: the conf was replayed.
        deepEqual(reply, { ...policy, ...(reply.rpc === 2 ? { id: reply.id } : {}) });
        await sleep(50);
      }
      throw new Error("the plugin did not serve again");
    }

    /**
     * Runs the fault with `x-go` on its own route while `say` answers, and checks the policy
     * answer, its timing, the log line of the cause, the counters, the restart and recovery.
     */
    async function killCase(options: {
      plugin: string;
      policy: Reply;
      cause: "timeout" | "oom" | "violation";
      log: RegExp;
      withinMs: number;
    }): Promise<void> {
      const { plugin, policy } = options;
      const { conn, token } = await route(plugin);
      const before = h.counts(plugin)[options.cause];
      const restarts = h.supervisor(plugin).restarts;
      equal(h.host(plugin).restarts, restarts);
      const fault = timed(conn, token, true);
      // During: the bystander keeps answering while the fault runs.
      await say.check();
      await say.check();
      const { reply, ms } = await fault;
      const answered = performance.now();
      deepEqual(reply, policy.rpc === 2 ? { ...policy, id: 9 } : policy);
      ok(ms <= options.withinMs, `${plugin} answered after ${ms.toFixed(0)} ms`);
      match(await h.waitForLine(options.log), options.log);
      equal(h.counts(plugin)[options.cause], before + 1, `${plugin} counted ${options.cause}`);
      await servesAgain(conn, token, policy, answered);
      // Once for the fault; a loaded machine may add a restart for a slow first call after it.
      ok(h.supervisor(plugin).restarts >= restarts + 1);
      equal(h.host(plugin).restarts, h.supervisor(plugin).restarts);
      await say.check();
    }

    try {
      await t.step("an infinite loop: deadline, SIGKILL, restart (closed)", async () => {
        await killCase({
          plugin: "loop",
          policy: CLOSED,
          cause: "timeout",
          log: /killing sandbox plugin:loop: call exceeded its deadline of 300 ms/,
          withinMs: 300 + 50,
        });
      });

      await t.step("a promise that never settles: deadline, NONE (open)", async () => {
        await killCase({
          plugin: "never_settles",
          policy: { rpc: 2, id: 0, action: "none" },
          cause: "timeout",
          log: /killing sandbox plugin:never_settles: call exceeded its deadline of 300 ms/,
          withinMs: 300 + 50,
        });
      });

      await t.step("an inline plugin that hangs: deadline, worker replaced", async () => {
        await killCase({
          plugin: "inline_hang",
          policy: CLOSED,
          cause: "timeout",
          log: /killing sandbox inline:inline_hang: call exceeded its deadline of 300 ms/,
          withinMs: 300 + 50,
        });
        equal(h.supervisor("inline_hang").pid, null);
      });

      await t.step("frames for another slot of a shared sandbox: violation, killed", async () => {
        await killCase({
          plugin: "slot_spoof",
          policy: CLOSED,
          cause: "violation",
          log: /sandbox group:spoof ended: a frame for slot 1 on the connection of slot 0/,
          withinMs: 20_000,
        });
      });

      await t.step("a heap bomb: the V8 heap limit ends the sandbox", async () => {
        await killCase({
          plugin: "heap_bomb",
          policy: CLOSED,
          cause: "oom",
          log: /sandbox plugin:heap_bomb ended: .*(ran out of memory|resident memory)/,
          withinMs: 20_000,
        });
      });

      await t.step("an ArrayBuffer bomb: the resident-memory watchdog ends it", async () => {
        await killCase({
          plugin: "buffer_bomb",
          policy: { rpc: 2, id: 0, action: "none" },
          cause: "oom",
          log: /sandbox plugin:buffer_bomb ended: resident memory \d+ MiB exceeded 160 MiB/,
          withinMs: 20_000,
        });
      });

      await t.step("a message flood past the plugin's own log limit", async () => {
        await killCase({
          plugin: "log_flood",
          policy: CLOSED,
          cause: "violation",
          log: /killing sandbox plugin:log_flood: protocol violation: message flood/,
          withinMs: 20_000,
        });
        // The runner did not log the whole flood: far fewer lines than the plugin wrote.
        ok(h.linesMatching(/a6\.plugin\.log_flood.*flood line/).length <= 20_000);
      });

      await t.step("large messages that answer nothing, below the flood count", async () => {
        await killCase({
          plugin: "stray_flood",
          policy: CLOSED,
          cause: "violation",
          log:
            /killing sandbox plugin:stray_flood: protocol violation: message flood: more than 64 MiB/,
          withinMs: 20_000,
        });
      });

      await t.step("a raw stderr flood blocks the plugin, not the runner", async () => {
        await killCase({
          plugin: "stdio_flood",
          policy: CLOSED,
          cause: "timeout",
          log: /killing sandbox plugin:stdio_flood: call exceeded its deadline of 300 ms/,
          withinMs: 300 + 50,
        });
        await h.waitForLine(/sandbox plugin:stdio_flood: dropped \d+ output lines/);
        // At most a second's budget of lines (plus the last partial chunk) reached the log.
        ok(h.linesMatching(/sandbox plugin:stdio_flood says/).length < 1000);
      });

      await t.step("a thrown error: the call fails by policy, the sandbox stays", async () => {
        const { conn, token } = await route("throws");
        const before = h.counts("throws").error;
        const { reply } = await timed(conn, token, true);
        deepEqual(reply, CLOSED);
        await h.waitForLine(/a6\.plugin\.throws.*call failed: RangeError: the plugin threw/);
        equal(h.counts("throws").error, before + 1);
        equal(stopBody((await timed(conn, token, false)).reply), "alive");
        equal(h.supervisor("throws").restarts, 0);
        await say.check();
      });

      await t.step(
        "an unhandled rejection and a timer error are logged, nothing else",
        async () => {
          const { conn, token } = await route("unhandled");
          const { reply } = await timed(conn, token, true);
          equal(stopBody(reply), "answered anyway");
          await h.waitForLine(/a6\.plugin\.unhandled.*unhandled promise rejection.*on purpose/);
          await h.waitForLine(/a6\.plugin\.unhandled.*uncaught error.*timer error on purpose/);
          equal(stopBody((await timed(conn, token, false)).reply), "alive");
          equal(h.supervisor("unhandled").restarts, 0);
          await say.check();
        },
      );

      await t.step(
        "a reply over 16 MiB: refused unread, SERVICE_UNAVAILABLE, never a bad frame",
        async () => {
          const { conn, token } = await route("big_reply");
          const { reply } = await timed(conn, token, true);
          deepEqual(reply, CLOSED);
          // Refused from the patch's own lengths, before it was decoded or encoded.
          await h.waitForLine(/big_reply.*refused: its patch makes a reply of more than 16777215/);
          // The connection is still in step: the next call on it is answered normally.
          equal(stopBody((await timed(conn, token, false)).reply), "alive");
          equal(h.supervisor("big_reply").restarts, 0);
          await say.check();
        },
      );

      await t.step(
        "an inline plugin's reply over 16 MiB: the same bounds, SERVICE_UNAVAILABLE",
        async () => {
          // Inline calls hand the Patch object back without a batch; the bounds still apply.
          const { conn, token } = await route("big_reply_inline");
          const { reply } = await timed(conn, token, true);
          deepEqual(reply, CLOSED);
          await h.waitForLine(
            /big_reply_inline.*refused: its patch makes a reply of more than 16777215/,
          );
          equal(stopBody((await timed(conn, token, false)).reply), "alive");
          await say.check();
        },
      );

      await t.step(
        "a killed sandbox: confs are parsed again before the calls waiting on them",
        async () => {
          const conn = await h.connect();
          conns.push(conn);
          const token = await conn.token([["slow_conf", JSON.stringify({ answer: "rebuilt" })]]);
          equal(stopBody((await conn.reqCall({ token })).reply), "rebuilt");
          const pid = h.supervisor("slow_conf").pid!;
          Deno.kill(pid, "SIGKILL");
          await h.waitForLine(/sandbox plugin:slow_conf ended: .*SIGKILL/);
          // Sent while the sandbox restarts: it travels with the replayed conf and must wait for
          // its 150 ms parseConf (a call that overtook it would skip the plugin: a NONE reply).
          const { reply } = await conn.reqCall({ token });
          equal(stopBody(reply), "rebuilt");
          equal(h.supervisor("slow_conf").restarts, 1);
          notEqual(h.supervisor("slow_conf").pid, pid);
          equal(h.counts("slow_conf").bad_conf, 0);
        },
      );

      await t.step("SIGUSR1 from outside opens an inspector: the tripwire kills it", async () => {
        // No plugin can send it (see the escape suite); another local process could. Deno
        // installs its SIGUSR1 handler 500 ms after start.
        const { conn, token } = await route("throws");
        const restarts = h.supervisor("throws").restarts;
        await sleep(600);
        Deno.kill(h.supervisor("throws").pid!, "SIGUSR1");
        const line = await h.waitForLine(
          /killing|sandbox plugin:throws ended|Debugger listening|inspector/i,
          5000,
        );
        if (/Debugger listening/.test(line) || /killing/.test(line)) {
          await h.waitForLine(/sandbox plugin:throws ended: the sandbox opened a V8 inspector/);
        }
        await servesAgain(conn, token, CLOSED);
        ok(h.supervisor("throws").restarts >= restarts + 1);
        await say.check();
      });

      await t.step("a plugin that keeps crashing is marked unavailable, once", async () => {
        const { conn, token } = await route("crash_loop");
        const none = { rpc: 2, id: 9, action: "none" };
        const unavailable = /crash_loop ended 5 times within 60 s .*unavailable for 30 s/;
        for (let i = 0; i < 5; i++) {
          deepEqual((await timed(conn, token, true)).reply, none);
          await say.check();
        }
        await h.waitForLine(unavailable);
        const counted = h.counts("crash_loop");
        equal(counted.oom, 5, JSON.stringify(counted));
        // Unavailable: every call is answered at once by policy, without starting a sandbox.
        for (let i = 0; i < 3; i++) {
          const { reply, ms } = await timed(conn, token, false);
          deepEqual(reply, none);
          ok(ms < 100, `answered in ${ms.toFixed(0)} ms`);
        }
        equal(h.counts("crash_loop").unavailable, counted.unavailable + 3);
        equal(h.linesMatching(unavailable).length, 1);
        equal(h.supervisor("crash_loop").pid, null);
        await say.check();
      });

      const sorted = [...servingAgainMs].sort((a, b) => a - b);
      console.log(
        `restart to serving again (ms): ${sorted.map((ms) => ms.toFixed(0)).join(", ")}`,
      );
      // The bystander never failed.
      deepEqual(
        Object.entries(h.counts("say")).filter(([k, v]) => k !== "ok" && v !== 0),
        [],
      );
    } finally {
      say.close();
      for (const conn of conns) conn.close();
      await h.close();
    }
  },
});
