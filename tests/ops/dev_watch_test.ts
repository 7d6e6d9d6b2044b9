/**
 * `dev`: debug logs, and a changed plugin file reloaded into a new sandbox while the runner
 * keeps its socket and APISIX's connection; a plugin beside it is left alone.
 */
import { equal, match, ok } from "node:assert/strict";
import { ApisixConn, latin1, type Reply } from "../support/apisix.ts";
import { startRunner } from "../support/runner.ts";
import { BROKEN_PLUGIN, replaceFile, versionedPlugin } from "./plugin_files.ts";

function body(reply: Reply): string {
  if (reply.rpc !== 2 || reply.action !== "stop") throw new Error(JSON.stringify(reply));
  return latin1(reply.body ?? new Uint8Array());
}

Deno.test("dev reloads a changed plugin file; connections and tokens stay", async () => {
  const dir = await Deno.makeTempDir({ prefix: "a6-dev-" });
  await Deno.mkdir(`${dir}/other`);
  const plugin = `${dir}/ver.ts`;
  await Deno.writeTextFile(plugin, versionedPlugin("ver", "first"));
  await Deno.writeTextFile(`${dir}/other/still.ts`, versionedPlugin("still", "still"));
  const runner = await startRunner({
    command: "dev",
    config: {
      bundled: false,
      plugins: { ver: { module: plugin }, still: { module: `${dir}/other/still.ts` } },
    },
  });
  try {
    await runner.waitForLine(/watching plugin sources in/);
    const conn = await ApisixConn.connect(runner.socket);
    const token = await conn.token([["ver", "{}"]]);
    const still = await conn.token([["still", "{}"]]);
    equal(body((await conn.reqCall({ token })).reply), "first");
    equal(body((await conn.reqCall({ token: still })).reply), "still");
    // dev logs at debug level.
    ok(runner.lines.some((line) => /level=debug/.test(line)), "debug lines in dev");

    await replaceFile(plugin, versionedPlugin("ver", "second"));
    const line = await runner.waitForLine(/reloaded \(.*ver\.ts.* changed\)/);
    match(line, /1 sandboxes replaced, 1 confs parsed again/);
    equal(body((await conn.reqCall({ token })).reply), "second");
    equal(body((await conn.reqCall({ token: still })).reply), "still");

    // A save with a syntax error keeps the last good version running.
    await replaceFile(plugin, BROKEN_PLUGIN);
    await runner.waitForLine(/reload \(.*ver\.ts.* changed\) failed: plugin ver/);
    equal(body((await conn.reqCall({ token })).reply), "second");

    await replaceFile(plugin, versionedPlugin("ver", "third"));
    await runner.waitForLine(/reloaded \(.*ver\.ts.* changed\)[^\n]*confs parsed/);
    // The reload line may be the earlier one: poll until the new version answers.
    const deadline = Date.now() + 10_000;
    let answer = "";
    while (Date.now() < deadline) {
      answer = body((await conn.reqCall({ token })).reply);
      if (answer === "third") break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    equal(answer, "third");
    conn.close();
  } finally {
    await runner.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
