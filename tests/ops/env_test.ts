/**
 * The environment nginx leaves the runner: PATH and APISIX_* only, no HOME, no DENO_DIR, a pipe
 * as stdin. Started the way `deno task start` starts it, the runner must serve calls through a
 * sandbox process, print nothing but its own log lines, say which plugin variables are
 * missing, and exit when its parent is gone.
 */
import { equal, match, ok } from "node:assert/strict";
import { ApisixConn, latin1 } from "../support/apisix.ts";
import { ROOT, startFlags, waitForSocket } from "../support/runner.ts";

interface Hidden {
  child: Deno.ChildProcess;
  socket: string;
  output: Promise<string[]>;
  cleanup(): Promise<void>;
}

async function startHidden(env: Record<string, string>, config: unknown): Promise<Hidden> {
  const dir = await Deno.makeTempDir({ prefix: "a6-env-" });
  const socket = `${dir}/runner.sock`;
  await Deno.writeTextFile(`${dir}/runner.json`, JSON.stringify(config));
  const child = new Deno.Command(Deno.execPath(), {
    args: [...await startFlags(), `${ROOT}/main.ts`, "run", "--config", `${dir}/runner.json`],
    cwd: "/",
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      APISIX_LISTEN_ADDRESS: `unix:${socket}`,
      APISIX_CONF_EXPIRE_TIME: "3600",
      ...env,
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]).then(([out, err]) => (out + err).split("\n").filter(Boolean));
  await waitForSocket(socket);
  return {
    child,
    socket,
    output,
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}

async function say(socket: string): Promise<string> {
  const conn = await ApisixConn.connect(socket);
  try {
    const token = await conn.token([["say", '{"body":"hidden env"}']]);
    const { reply } = await conn.reqCall({ token });
    return reply.rpc === 2 && reply.action === "stop" ? latin1(reply.body!) : JSON.stringify(reply);
  } finally {
    conn.close();
  }
}

async function stopHidden(runner: Hidden): Promise<string[]> {
  runner.child.kill("SIGTERM");
  equal((await runner.child.status).code, 0);
  await runner.child.stdin.close().catch(() => {});
  const lines = await runner.output;
  await runner.cleanup();
  return lines;
}

Deno.test("no HOME, no DENO_DIR: the runner serves through a sandbox and prints only log lines", async () => {
  const runner = await startHidden({}, {
    bundled: false,
    plugins: { say: { permissions: { env: ["GEO_API_KEY"] } } },
  });
  equal(await say(runner.socket), "hidden env");
  const lines = await stopHidden(runner);
  for (const line of lines) match(line, /^time=\S+ level=\w+ logger=a6\./, "only log lines");
  ok(!lines.some((line) => /level=(error|fatal)/.test(line)), lines.join("\n"));
  const hint = lines.find((line) => /GEO_API_KEY/.test(line));
  ok(hint, "a hint about the missing variable");
  match(hint, /level=warning.*plugin say may read GEO_API_KEY.*nginx_config: envs/);
});

Deno.test("an empty DENO_DIR (a user whose cache is elsewhere) works too, offline", async () => {
  const cache = await Deno.makeTempDir({ prefix: "a6-denodir-" });
  try {
    // An unreachable registry: nothing may be fetched at start.
    const runner = await startHidden(
      { DENO_DIR: cache, NPM_CONFIG_REGISTRY: "http://127.0.0.1:9/" },
      { bundled: false, plugins: { say: {} } },
    );
    equal(await say(runner.socket), "hidden env");
    const lines = await stopHidden(runner);
    for (const line of lines) match(line, /^time=\S+ level=\w+ logger=a6\./, "only log lines");
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("the runner exits when APISIX's pipe (its stdin) closes", async () => {
  const runner = await startHidden({}, { bundled: false, plugins: { say: {} } });
  equal(await say(runner.socket), "hidden env");
  const closed = performance.now();
  await runner.child.stdin.close();
  equal((await runner.child.status).code, 0);
  const ms = performance.now() - closed;
  ok(ms < 1500, `exited ${Math.round(ms)} ms after stdin closed`);
  const lines = await runner.output;
  ok(lines.some((line) => /shutting down: stdin closed/.test(line)), lines.join("\n"));
  await runner.cleanup();
});

Deno.test("the runner exits when its parent process dies (re-parented), stdin or not", async () => {
  const dir = await Deno.makeTempDir({ prefix: "a6-env-" });
  const socket = `${dir}/runner.sock`;
  const pidFile = `${dir}/pid`;
  const flags = (await startFlags()).join(" ");
  // A parent shell that starts the runner with /dev/null as stdin, then dies.
  const script =
    `"${Deno.execPath()}" ${flags} "${ROOT}/main.ts" run </dev/null >"${dir}/log" 2>&1 &
echo $! >"${pidFile}"
sleep 1.5`;
  const parent = new Deno.Command("/bin/sh", {
    args: ["-c", script],
    env: { APISIX_LISTEN_ADDRESS: `unix:${socket}` },
  }).spawn();
  try {
    await waitForSocket(socket);
    const pid = Number(await Deno.readTextFile(pidFile));
    equal(await say(socket), "hidden env");
    await parent.status;
    // (Deno refuses to stat /proc without --allow-all: ask ps whether the runner lives.)
    const alive = async () =>
      (await new Deno.Command("ps", { args: ["-p", String(pid)] }).output()).success;
    const deadline = Date.now() + 5000;
    while (await alive() && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    ok(!await alive(), "the runner exited after its parent died");
    match(await Deno.readTextFile(`${dir}/log`), /shutting down: the parent process \d+ is gone/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
