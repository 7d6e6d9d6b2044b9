/**
 * Reloads in production: SIGHUP reloads every plugin into new sandboxes while APISIX's
 * connections and tokens keep working and a call in flight finishes on the old version; a
 * reload that would break something is refused and the old version keeps serving; a changed
 * configuration file is picked up, a broken one refused with the file, key and expectation.
 */
import { equal, match } from "node:assert/strict";
import { ApisixConn, latin1, type Reply } from "../support/apisix.ts";
import { startRunner } from "../support/runner.ts";
import { BROKEN_PLUGIN, replaceFile, versionedPlugin } from "./plugin_files.ts";

function body(reply: Reply): string {
  if (reply.rpc !== 2 || reply.action !== "stop") throw new Error(JSON.stringify(reply));
  return latin1(reply.body ?? new Uint8Array());
}

Deno.test("SIGHUP reloads plugins: same socket, connections and tokens; calls in flight finish on the old version", async () => {
  const dir = await Deno.makeTempDir({ prefix: "a6-reload-" });
  const plugin = `${dir}/ver.ts`;
  await Deno.writeTextFile(plugin, versionedPlugin("ver", "v1"));
  const runner = await startRunner({
    config: { bundled: false, plugins: { ver: { module: plugin, timeoutMs: 5000 } } },
    args: ["--log-level", "debug"],
  });
  try {
    const conn = await ApisixConn.connect(runner.socket);
    const token = await conn.token([["ver", "{}"]]);
    equal(body((await conn.reqCall({ token })).reply), "v1");

    // A call that is still running when the reload happens.
    const slowConn = await ApisixConn.connect(runner.socket);
    const slowToken = await slowConn.token([["ver", '{"delayMs":1500}']]);
    const slowCall = slowConn.reqCall({ id: 9, token: slowToken });
    await new Promise((resolve) => setTimeout(resolve, 300));

    await replaceFile(plugin, versionedPlugin("ver", "v2"));
    runner.process.kill("SIGHUP");
    const line = await runner.waitForLine(/reloaded \(SIGHUP\) in \d+ ms/);
    match(line, /2 confs parsed again/);

    // The same connection and the same tokens, now answered by the new version.
    equal(body((await conn.reqCall({ token })).reply), "v2");
    const slow = await slowCall;
    equal(body(slow.reply), "v1", "the call in flight finished on the old version");
    // The old sandbox is stopped once its last call is answered.
    await runner.waitForLine(/previous versions of plugin:ver stopped/);
    equal(body((await slowConn.reqCall({ token: slowToken })).reply), "v2");
    conn.close();
    slowConn.close();
  } finally {
    await runner.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a reload that would break a plugin is refused: the old version keeps serving", async () => {
  const dir = await Deno.makeTempDir({ prefix: "a6-reload-" });
  const plugin = `${dir}/ver.ts`;
  await Deno.writeTextFile(plugin, versionedPlugin("ver", "v1"));
  const runner = await startRunner({
    config: { bundled: false, plugins: { ver: { module: plugin } } },
  });
  try {
    const conn = await ApisixConn.connect(runner.socket);
    const token = await conn.token([["ver", '{"delayMs":1}']], "route#7#ext-plugin-pre-req#1");

    // 1. The new version does not load.
    await replaceFile(plugin, BROKEN_PLUGIN);
    runner.process.kill("SIGHUP");
    const loadFailure = await runner.waitForLine(/reload \(SIGHUP\) failed/);
    match(loadFailure, /plugin ver: sandbox plugin:ver failed to start: .*SyntaxError/);
    match(loadFailure, /the previous plugins and configuration keep serving/);
    equal(body((await conn.reqCall({ token })).reply), "v1");

    // 2. The new version rejects a conf a live route uses.
    await replaceFile(plugin, versionedPlugin("ver", "v3", true));
    runner.process.kill("SIGHUP");
    const confFailure = await runner.waitForLine(/reload \(SIGHUP\) failed: plugin ver: the new/);
    match(confFailure, /rejects the conf of route route#7#ext-plugin-pre-req#1: delayMs is gone/);
    equal(body((await conn.reqCall({ token })).reply), "v1");

    // 3. A version that takes the conf goes through.
    await replaceFile(plugin, versionedPlugin("ver", "v4"));
    runner.process.kill("SIGHUP");
    await runner.waitForLine(/reloaded \(SIGHUP\)/);
    equal(body((await conn.reqCall({ token })).reply), "v4");
    conn.close();
  } finally {
    await runner.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a changed configuration file is reloaded; a broken one is refused with file, key and expectation", async () => {
  const dir = await Deno.makeTempDir({ prefix: "a6-reload-" });
  await Deno.writeTextFile(`${dir}/one.ts`, versionedPlugin("one", "one"));
  await Deno.writeTextFile(`${dir}/two.ts`, versionedPlugin("two", "two"));
  const runner = await startRunner({
    config: { bundled: false, plugins: { one: { module: `${dir}/one.ts` } } },
  });
  const file = `${runner.dir}/runner.json`;
  try {
    const conn = await ApisixConn.connect(runner.socket);
    const one = await conn.token([["one", "{}"]]);
    equal(body((await conn.reqCall({ token: one })).reply), "one");

    // A mistake: the old configuration keeps serving.
    await replaceFile(
      file,
      JSON.stringify({
        bundled: false,
        plugins: { one: { module: `${dir}/one.ts`, timeoutMs: "5s" } },
      }),
    );
    const refused = await runner.waitForLine(/reload \(.*runner\.json changed\) refused/);
    match(
      refused,
      /runner\.json: plugins\.one\.timeoutMs: expected an integer from 1 to 55000, got \\"5s\\"/,
    );
    equal(body((await conn.reqCall({ token: one })).reply), "one");

    // A good change: plugin two appears, one keeps its sandbox (its settings did not change).
    await replaceFile(
      file,
      JSON.stringify({
        bundled: false,
        plugins: { one: { module: `${dir}/one.ts` }, two: { module: `${dir}/two.ts` } },
      }),
    );
    const reloaded = await runner.waitForLine(/reloaded \(.*runner\.json changed\)/);
    match(reloaded, /0 sandboxes replaced/);
    const two = await conn.token([["two", "{}"], ["one", "{}"]]);
    equal(body((await conn.reqCall({ token: two })).reply), "two");
    equal(body((await conn.reqCall({ token: one })).reply), "one");
    conn.close();
  } finally {
    await runner.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a PrepareConf in flight during a reload ends up on the new version", async () => {
  const dir = await Deno.makeTempDir({ prefix: "a6-reload-" });
  const plugin = `${dir}/ver.ts`;
  await Deno.writeTextFile(plugin, versionedPlugin("ver", "v1"));
  const runner = await startRunner({
    config: { bundled: false, plugins: { ver: { module: plugin } } },
    args: ["--log-level", "debug"],
  });
  try {
    const conn = await ApisixConn.connect(runner.socket);
    equal(body((await conn.reqCall({ token: await conn.token([["ver", "{}"]]) })).reply), "v1");
    // parseConf takes 800 ms: the reload swaps generations while it runs on the old one.
    const other = await ApisixConn.connect(runner.socket);
    const pending = other.token([["ver", '{"parseDelayMs":800}']], "route#9#ext-plugin-pre-req#1");
    await new Promise((resolve) => setTimeout(resolve, 100));
    await replaceFile(plugin, versionedPlugin("ver", "v2"));
    runner.process.kill("SIGHUP");
    await runner.waitForLine(/reloaded \(SIGHUP\)/);
    const token = await pending;
    equal(body((await other.reqCall({ token })).reply), "v2");
    await runner.waitForLine(/previous versions of plugin:ver stopped/);
    equal(body((await other.reqCall({ token })).reply), "v2");
    conn.close();
    other.close();
  } finally {
    await runner.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
