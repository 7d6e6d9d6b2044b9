/**
 * Logs: no line per request at info level; JSON lines to a file; plugin console output under
 * the plugin's category; levels by flag, environment variable and per category in the file.
 */
import { equal, ok } from "node:assert/strict";
import { ApisixConn } from "../support/apisix.ts";
import { startRunner } from "../support/runner.ts";

const CHATTY = `export default {
  name: "chatty",
  requestFilter(_conf, req) {
    if (req.path === "/log") {
      console.log("info from chatty");
      console.warn("warning from chatty");
    }
  },
};
`;

Deno.test("info level: not one log line per request, whatever the number of requests", async () => {
  const runner = await startRunner({ config: { bundled: false, plugins: { say: {} } } });
  try {
    const conn = await ApisixConn.connect(runner.socket);
    const token = await conn.token([["say", '{"body":"hi"}']]);
    await conn.reqCall({ token });
    await runner.waitForLine(/sandbox plugin:say ready/);
    const before = runner.lines.length;
    for (let i = 0; i < 50; i++) {
      const other = await ApisixConn.connect(runner.socket);
      await other.reqCall({ token: await other.token([["say", `{"body":"${i}"}`]]) });
      await conn.reqCall({ token });
      await conn.reqCall({ token: 12345 }); // unknown token: debug only
      other.close();
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    equal(runner.lines.slice(before).join("\n"), "");
    conn.close();
  } finally {
    await runner.stop();
  }
});

Deno.test("JSON lines to a file; plugin console output under a6.plugin.<name>; per-category levels", async () => {
  const dir = await Deno.makeTempDir({ prefix: "a6-logs-" });
  await Deno.writeTextFile(`${dir}/chatty.ts`, CHATTY);
  const logFile = `${dir}/runner.log`;
  const runner = await startRunner({
    config: {
      bundled: false,
      plugins: { chatty: { module: `${dir}/chatty.ts` } },
      log: { levels: { "a6.plugin.chatty": "warning" } },
    },
    args: ["--log-format", "json", "--log-file", logFile],
  });
  try {
    const conn = await ApisixConn.connect(runner.socket);
    const token = await conn.token([["chatty", "{}"]]);
    await conn.reqCall({ token, path: "/log" });
    const deadline = Date.now() + 10_000;
    let records: Array<Record<string, unknown>> = [];
    while (Date.now() < deadline) {
      const text = await Deno.readTextFile(logFile);
      records = text.split("\n").filter(Boolean).map((line) => JSON.parse(line));
      if (records.some((r) => r.message === "warning from chatty")) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const warning = records.find((r) => r.message === "warning from chatty");
    ok(warning, "the plugin's console.warn is logged");
    equal(warning.logger, "a6.plugin.chatty");
    equal(warning.level, "WARN");
    ok(!records.some((r) => r.message === "info from chatty"), "a6.plugin.chatty is at warning");
    ok(records.some((r) => r.logger === "a6.runner" && r.level === "INFO"), "runner info lines");
    // Nothing on stderr: the file has it all.
    equal(runner.lines.filter((line) => line.trim()).join("\n"), "");
    conn.close();
  } finally {
    await runner.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("A6_LOG_LEVEL sets the level; the flag wins over it", async () => {
  const quiet = await startRunner({ env: { A6_LOG_LEVEL: "warning" } });
  try {
    await new Promise((resolve) => setTimeout(resolve, 200));
    ok(!quiet.lines.some((line) => /level=info/.test(line)), quiet.lines.join("\n"));
  } finally {
    await quiet.stop();
  }
  const loud = await startRunner({
    env: { A6_LOG_LEVEL: "warning" },
    args: ["--log-level", "info"],
  });
  try {
    await loud.waitForLine(/level=info logger=a6\.runner msg="listening/);
  } finally {
    await loud.stop();
  }
});

const FAILING = `export default {
  name: "failing",
  requestFilter() {
    throw new Error("failing: every request");
  },
};
`;

Deno.test("a plugin that fails every call logs at most logLinesPerSecond lines, then one count", async () => {
  const dir = await Deno.makeTempDir({ prefix: "a6-logs-" });
  await Deno.writeTextFile(`${dir}/failing.ts`, FAILING);
  const runner = await startRunner({
    config: {
      bundled: false,
      plugins: { failing: { module: `${dir}/failing.ts`, logLinesPerSecond: 3 } },
    },
  });
  try {
    const conn = await ApisixConn.connect(runner.socket);
    const token = await conn.token([["failing", "{}"]]);
    const start = performance.now();
    for (let i = 0; i < 20; i++) equal((await conn.reqCall({ token })).reply.rpc, 0);
    const elapsed = performance.now() - start;
    const summary = await runner.waitForLine(/more failed calls not logged/);
    const failed = runner.lines.filter((line) => line.includes("call failed"));
    // All 20 fit in one second on any sane machine; a slow one spreads them over more budgets.
    const seconds = Math.ceil(elapsed / 1000) + 1;
    ok(failed.length >= 3 && failed.length <= 3 * seconds, `${failed.length} lines`);
    ok(/held=\d+ perSecond=3/.test(summary), summary);
    // The reason comes first; the stack shows the plugin's frame, not the runner's internals.
    ok(/msg="call failed: Error: failing: every request"/.test(failed[0]!), failed[0]);
    ok(failed[0]!.includes("failing.ts:4"), failed[0]);
    ok(!/plugin_worker\.ts|ext:deno_/.test(failed[0]!), failed[0]);
    conn.close();
  } finally {
    await runner.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
