/**
 * PROTOCOL.md §8 cases 1–12 (socket setup §1.3, lifecycle §1.4, connections §4.1), each against
 * a real runner process and its socket.
 *
 * @module
 */
import { AssertionError as assertionError, deepEqual, equal, ok } from "node:assert/strict";
import {
  ApisixConn,
  decodeReply,
  encodePrepareConf,
  encodeReqCall,
  frame,
  ReadTimeout,
  RPC,
} from "../support/apisix.ts";
import { asNone, asRewrite, asStop } from "../support/replies.ts";
import { runUntilExit, sharedRunner, startRunner } from "../support/runner.ts";
import { routeKey, script, scriptedConfig } from "../support/scripted.ts";

const shared = sharedRunner({ config: scriptedConfig() });
const SHARED = { sanitizeOps: false, sanitizeResources: false };

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "a6-startup-" });
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Leaves a socket file nobody listens on: a process that listened was killed. */
async function leaveStaleSocket(path: string): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `Deno.listen({ transport: "unix", path: ${JSON.stringify(path)} });` +
      `console.log("listening"); setInterval(() => {}, 1000);`,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.getReader();
  await reader.read();
  child.kill("SIGKILL");
  await child.status;
  reader.releaseLock();
  await child.stdout.cancel();
}

/** Resolves to the exit status, or null if the process is still running after `ms`. */
async function exitWithin(process: Deno.ChildProcess, ms: number) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), ms));
  try {
    return await Promise.race([process.status, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("§8.1 the runner creates the socket's parent folder and listens with mode 0766", async () => {
  const dir = await tempDir();
  const socket = `${dir}/t/deeper/r.sock`;
  const runner = await startRunner({ socket });
  try {
    const info = Deno.statSync(socket);
    ok(info.isSocket, "a socket file");
    equal(info.mode! & 0o777, 0o766);
    const conn = await ApisixConn.connect(socket);
    ok((await conn.token(null)) !== 0);
    conn.close();
  } finally {
    await runner.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("§8.2 a stale regular file or socket file at the path is replaced", async () => {
  const dir = await tempDir();
  try {
    const regular = `${dir}/regular.sock`;
    Deno.writeTextFileSync(regular, "stale");
    const stale = `${dir}/stale.sock`;
    await leaveStaleSocket(stale);
    ok(Deno.lstatSync(stale).isSocket);
    for (const socket of [regular, stale]) {
      const runner = await startRunner({ socket });
      try {
        ok(Deno.statSync(socket).isSocket);
        const conn = await ApisixConn.connect(socket);
        ok((await conn.token(null)) !== 0);
        conn.close();
      } finally {
        await runner.stop();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("§8.3 a missing address, or one without unix: or not absolute, exits non-zero naming the variable", async () => {
  const cases: Array<[string, Record<string, string>]> = [
    ["missing", {}],
    ["empty", { APISIX_LISTEN_ADDRESS: "" }],
    ["no prefix", { APISIX_LISTEN_ADDRESS: "/tmp/runner.sock" }],
    ["tcp", { APISIX_LISTEN_ADDRESS: "tcp://127.0.0.1:9999" }],
    ["relative", { APISIX_LISTEN_ADDRESS: "unix:conf/runner.sock" }],
  ];
  const reports = await Promise.all(cases.map(([, env]) => runUntilExit({ env })));
  for (const [i, report] of reports.entries()) {
    const [what] = cases[i]!;
    ok(report.code !== 0, `${what}: exit code ${report.code}`);
    ok(report.output.includes("APISIX_LISTEN_ADDRESS"), `${what}: ${report.output}`);
  }
});

Deno.test("§8.4 APISIX_CONF_EXPIRE_TIME: unset uses the default; non-numeric or 0 is a start-up error", async () => {
  const dir = await tempDir();
  try {
    const address = { APISIX_LISTEN_ADDRESS: `unix:${dir}/r.sock` };
    const bad = await Promise.all(
      ["abc", "0", "-5"].map((value) =>
        runUntilExit({ env: { ...address, APISIX_CONF_EXPIRE_TIME: value } })
      ),
    );
    for (const report of bad) {
      ok(report.code !== 0);
      ok(report.output.includes("APISIX_CONF_EXPIRE_TIME"), report.output);
    }
    // Unset (and blank): the runner starts and serves (the 3600 s default itself is checked in
    // runner/apisix/server_test.ts; a test cannot wait an hour).
    for (const env of [{}, { APISIX_CONF_EXPIRE_TIME: "" }]) {
      const runner = await startRunner({ socket: `${dir}/ok.sock`, env });
      try {
        const conn = await ApisixConn.connect(runner.socket);
        const token = await conn.token(null);
        asNone((await conn.reqCall({ token })).reply);
        conn.close();
      } finally {
        await runner.stop();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("§8.5 SIGTERM: the runner exits within 1 s and removes its own socket", async () => {
  const dir = await tempDir();
  const socket = `${dir}/r.sock`;
  const runner = await startRunner({ socket });
  try {
    const conn = await ApisixConn.connect(socket);
    ok((await conn.token(null)) !== 0);
    // An idle connection does not hold up the exit.
    const { status, ms } = await runner.stop();
    equal(status.code, 0, runner.lines.join("\n"));
    ok(ms < 1000, `exit took ${Math.round(ms)} ms`);
    ok(!exists(socket), "the socket file is gone");
    equal(await conn.readFrame(), null);
    conn.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("§8.5 SIGTERM right after the socket first accepts still shuts down cleanly", async () => {
  const dir = await tempDir();
  const socket = `${dir}/r.sock`;
  try {
    for (let i = 0; i < 3; i++) {
      const runner = await startRunner({ socket });
      const { status, ms } = await runner.stop();
      equal(status.code, 0, runner.lines.join("\n"));
      ok(ms < 1000, `exit took ${Math.round(ms)} ms`);
      ok(!exists(socket), "the socket file is gone");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("§8.5 SIGTERM: a socket path taken over by another listener is left alone", async () => {
  const dir = await tempDir();
  const socket = `${dir}/r.sock`;
  const runner = await startRunner({ socket });
  let successor: Deno.UnixListener | null = null;
  try {
    // A reload replaces the path of a runner that has started (it records its socket's inode
    // right after listening).
    await runner.waitForLine(/serving \d+ plugins/);
    // A reload: the new runner removes the path and listens on it while the old one exits.
    Deno.removeSync(socket);
    successor = Deno.listen({ transport: "unix", path: socket });
    const { status, ms } = await runner.stop();
    equal(status.code, 0, runner.lines.join("\n"));
    ok(ms < 1000, `exit took ${Math.round(ms)} ms`);
    ok(exists(socket), "the successor's socket survived");
    const accepted = successor.accept();
    const client = await Deno.connect({ transport: "unix", path: socket });
    (await accepted).close();
    client.close();
  } finally {
    successor?.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("§8.5 SIGTERM: new connections are refused, a call in flight is answered, exit within 1 s", async () => {
  const runner = await startRunner({ config: scriptedConfig() });
  try {
    const conn = await ApisixConn.connect(runner.socket);
    const started = `call-started-${crypto.randomUUID()}`;
    const token = await conn.token([[
      "scripted",
      script([["log", started], ["sleep", 300], ["set", "x-done", "1"]]),
    ]]);
    await conn.send(RPC.HttpReqCall, encodeReqCall({ id: 1, token }));
    // SIGTERM once the call is in the plugin's hands.
    await runner.waitForLine(new RegExp(started));
    const signalled = performance.now();
    runner.process.kill("SIGTERM");
    await runner.waitForLine(/shutting down/);
    // A new connection is refused, or (if it raced the listener's close) dropped unanswered.
    let late: ApisixConn | null = null;
    try {
      late = await ApisixConn.connect(runner.socket);
      await late.send(RPC.PrepareConf, encodePrepareConf(null, routeKey()));
      equal(await late.readFrame(2000), null, "a connection made after SIGTERM was served");
    } catch (error) {
      // Refused, or reset; never served nor left hanging.
      ok(!(error instanceof assertionError) && !(error instanceof ReadTimeout), String(error));
    } finally {
      late?.close();
    }
    const reply = decodeReply((await conn.readFrame())!);
    deepEqual(asRewrite(reply).headers, [["x-done", "1"]]);
    const status = await runner.process.status;
    const ms = performance.now() - signalled;
    equal(status.code, 0, runner.lines.join("\n"));
    ok(ms < 1000, `exit took ${Math.round(ms)} ms`);
    conn.close();
  } finally {
    await runner.stop();
  }
});

Deno.test("§1.4 the runner leaves when its stdin pipe (the parent) closes; /dev/null says nothing", async () => {
  const piped = await startRunner({ stdinPipe: true });
  const devNull = await startRunner();
  try {
    const conn = await ApisixConn.connect(devNull.socket);
    await piped.process.stdin.close();
    const status = await exitWithin(piped.process, 10_000);
    ok(status !== null, "the runner with a closed stdin pipe must exit");
    equal(status.code, 0, piped.lines.join("\n"));
    await piped.waitForLine(/stdin closed/);
    // The runner whose stdin is /dev/null saw the same time pass and still serves.
    equal(await exitWithin(devNull.process, 200), null);
    ok((await conn.token(null)) !== 0);
    conn.close();
  } finally {
    await piped.stop();
    await devNull.stop();
  }
});

Deno.test({
  name: "§8.6 a frame delivered one byte per write is parsed and answered once",
  ...SHARED,
  async fn() {
    const conn = await ApisixConn.connect((await shared.get()).socket);
    try {
      const bytes = frame(RPC.PrepareConf, encodePrepareConf([["x", "{}"]], routeKey()));
      await conn.writeChunked(bytes, 1, 1);
      const reply = decodeReply((await conn.readFrame())!);
      equal(reply.rpc, 1);
      ok(await conn.quietFor(200), "one reply only");
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.7 two complete frames in one write get two replies, in order",
  ...SHARED,
  async fn() {
    const conn = await ApisixConn.connect((await shared.get()).socket);
    try {
      const token = await conn.token(null);
      await conn.write(
        new Uint8Array([
          ...frame(RPC.HttpReqCall, encodeReqCall({ id: 11, token })),
          ...frame(RPC.PrepareConf, encodePrepareConf(null, routeKey())),
          ...frame(RPC.HttpReqCall, encodeReqCall({ id: 12, token })),
        ]),
      );
      const first = asNone(decodeReply((await conn.readFrame())!));
      const second = decodeReply((await conn.readFrame())!);
      const third = asNone(decodeReply((await conn.readFrame())!));
      deepEqual([first.id, second.rpc, third.id], [11, 1, 12]);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name:
    "§8.8 §8.12 ten exchanges on one connection are all answered; the runner never closes first or writes unprompted",
  ...SHARED,
  async fn() {
    const conn = await ApisixConn.connect((await shared.get()).socket);
    try {
      const token = await conn.token([["scripted", script([["var", "x"], ["respBody", "ok"]])]]);
      for (let id = 1; id <= 10; id++) {
        const { reply } = await conn.reqCall({ id, token }, () => String(id));
        equal(asStop(reply).id, id);
      }
      ok(await conn.quietFor(1000), "nothing may arrive, and the connection stays open");
      equal(asStop((await conn.reqCall({ id: 11, token }, () => "v")).reply).id, 11);
    } finally {
      conn.close();
    }
  },
});

Deno.test({
  name: "§8.9 with connection A open and idle, PrepareConf on B is answered; then A's call",
  ...SHARED,
  async fn() {
    const runner = await shared.get();
    const a = await ApisixConn.connect(runner.socket);
    const b = await ApisixConn.connect(runner.socket);
    try {
      // Warm the plugin so the timing below measures the runner, not a sandbox start.
      const conf: Array<[string, string]> = [["scripted", script([["set", "x-a", "1"]])]];
      await b.token(conf);
      // APISIX opens A, finds no token, and sends PrepareConf on B while A waits.
      const started = performance.now();
      const token = await b.token(conf, routeKey());
      const ms = performance.now() - started;
      // PROTOCOL.md asks for 100 ms; a serving loop that handled A first would never answer.
      ok(ms < 1000, `PrepareConf on B took ${Math.round(ms)} ms`);
      deepEqual(asRewrite((await a.reqCall({ token })).reply).headers, [["x-a", "1"]]);
    } finally {
      a.close();
      b.close();
    }
  },
});

Deno.test({
  name: "§8.10 200 concurrent connections each doing PrepareConf and HTTPReqCall all succeed",
  ...SHARED,
  async fn() {
    const runner = await shared.get();
    const results = await Promise.all(Array.from({ length: 200 }, async (_, i) => {
      const conn = await ApisixConn.connect(runner.socket);
      try {
        const route = i % 10;
        const token = await conn.token(
          [["scripted", script([["set", "x-route", String(route)]])]],
          `route#${route}#ext-plugin-pre-req#200`,
        );
        const { reply } = await conn.reqCall({ id: i, token });
        const rewrite = asRewrite(reply);
        equal(rewrite.id, i);
        deepEqual(rewrite.headers, [["x-route", String(route)]]);
        return token;
      } finally {
        conn.close();
      }
    }));
    equal(new Set(results).size, 10);
  },
});

Deno.test({
  name: "§8.11 a client closing mid-frame costs only its connection and at most one log line",
  ...SHARED,
  async fn() {
    const runner = await shared.get();
    const bystander = await ApisixConn.connect(runner.socket);
    const token = await bystander.token(null);
    const before = runner.lines.length;
    try {
      const whole = frame(RPC.HttpReqCall, encodeReqCall({ token, path: "/abc" }));
      for (const cut of [2, 4, 10]) {
        const conn = await ApisixConn.connect(runner.socket);
        await conn.write(whole.subarray(0, cut));
        conn.close();
        await runner.waitForLine(
          new RegExp(`closed mid-frame.*after ${cut < 4 ? cut : cut - 4} of`),
        );
      }
      asNone((await bystander.reqCall({ token })).reply);
      // One line per dropped connection, and nothing else about connections.
      const logged = runner.lines.slice(before);
      const aboutConnections = logged.filter((line) => /connection \d+/.test(line));
      equal(aboutConnections.length, 3, logged.join("\n"));
      ok(aboutConnections.every((line) => /mid-frame/.test(line)), logged.join("\n"));
      equal(new Set(aboutConnections.map((line) => /connection (\d+)/.exec(line)![1])).size, 3);
      ok(!logged.some((line) => /level=(error|fatal)/.test(line)), logged.join("\n"));
    } finally {
      bystander.close();
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
