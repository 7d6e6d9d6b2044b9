/**
 * The escape suite: one case per attack, each a small plugin in `plugins/`, each ending in
 * "denied" (every route the plugin tries is refused inside its sandbox) while a well-behaved
 * plugin (bundled `say`) on another route and connection answers correctly during and after
 * the attack. All cases share one runner; every attacker has its own sandbox process.
 *
 * @module
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import type { ApisixConn, Entry, Reply } from "../support/apisix.ts";
import { channelDirectory } from "../../runner/sandboxes/channel_dir.ts";
import {
  asStop,
  startBystander,
  startHarness,
  stopBody,
  stopHeader,
  SUITE_DIR,
  suitePlugin,
} from "./harness.ts";

const PERMISSION = /^(NotCapable|PermissionDenied)$/;

/** The routes a denied attack reports, with the error name each one met. */
function deniedRoutes(reply: Reply): Map<string, string> {
  const stop = asStop(reply);
  const attack = stopHeader(reply, "x-attack");
  const detail = stopHeader(reply, "x-detail");
  equal(attack, "denied", `expected every route refused; ${attack}; x-detail: ${detail}`);
  equal(stop.status, 403);
  const routes = new Map<string, string>();
  for (const item of (stopHeader(reply, "x-denied") ?? "").split(", ")) {
    const [route, name] = item.split(":");
    routes.set(route!, name!);
  }
  return routes;
}

/** Asserts the routes met exactly the expected error names (a RegExp matches one of them). */
function expectRoutes(reply: Reply, expected: Record<string, RegExp>): void {
  const routes = deniedRoutes(reply);
  deepEqual([...routes.keys()].sort(), Object.keys(expected).sort());
  const detail = stopHeader(reply, "x-detail");
  for (const [route, pattern] of Object.entries(expected)) {
    match(routes.get(route)!, pattern, `route ${route}; x-detail: ${detail}`);
  }
}

const secretDir = await Deno.makeTempDir({ prefix: "a6-secret-" });
const grantedDir = await Deno.makeTempDir({ prefix: "a6-granted-" });
const SECRET = `TOP-SECRET-${crypto.randomUUID()}`;
await Deno.writeTextFile(`${secretDir}/secret.txt`, SECRET);
await Deno.writeTextFile(`${grantedDir}/granted.txt`, "granted content");
Deno.env.set("A6_TEST_GRANTED", "granted-value");

const abort = new AbortController();
/** Request paths each test server saw: a leak through a URL shows up here. */
const served: string[] = [];
function httpServer(body: string): Promise<number> {
  return new Promise((resolve) => {
    Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      signal: abort.signal,
      onListen: ({ port }) => resolve(port),
    }, (request) => {
      served.push(new URL(request.url).pathname + new URL(request.url).search);
      return new Response(body);
    });
  });
}
const grantedPort = await httpServer("granted server");
const otherPort = await httpServer("other server");

const own = suitePlugin;

const CONFIG = {
  bundled: false,
  plugins: {
    say: {},
    read_file: own("read_file.ts", { permissions: { read: [grantedDir] } }),
    import_file: own("import_file.ts"),
    env_vars: own("env_vars.ts", { permissions: { env: ["A6_TEST_GRANTED"] } }),
    net_reach: own("net_reach.ts", { permissions: { net: [`127.0.0.1:${grantedPort}`] } }),
    net_inspector: own("net_inspector.ts", { permissions: { net: ["127.0.0.1"] } }),
    subprocess: own("subprocess.ts"),
    ffi: own("ffi.ts"),
    kill_self: own("kill_self.ts"),
    kill_runner: own("kill_runner.ts"),
    sigterm_hijack: own("sigterm_hijack.ts"),
    broadcast: own("broadcast.ts", { isolation: "shared", group: "bc" }),
    broadcast_victim: own("broadcast_victim.ts", { isolation: "shared", group: "bc" }),
    cache_api: own("cache_api.ts"),
    remote_import: own("remote_import.ts"),
    nested_worker: own("nested_worker.ts"),
    inspector_open: own("inspector_open.ts"),
    permissions_request: own("permissions_request.ts"),
    exit_self: own("exit_self.ts"),
    deno_args: own("deno_args.ts"),
    internals: own("internals.ts"),
    proto_tricks: own("proto_tricks.ts"),
    proto_pollution: own("proto_pollution.ts"),
    console_output: own("console_output.ts"),
    node_user: own("node_user.ts", { permissions: { env: ["A6_TEST_GRANTED"] } }),
    channel_reopen: own("channel_reopen.ts"),
  },
};

Deno.test({
  name: "escape suite: every attack is denied and the runner and other plugins are unaffected",
  // The runner is shared by every case; its timers and sockets outlive single steps.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const h = await startHarness(CONFIG);
    const bystander = await startBystander(h);
    const conns: ApisixConn[] = [];

    /** Runs `plugin` on its own route and connection while the bystander keeps answering. */
    async function attack(
      plugin: string,
      conf: unknown = {},
      headers: Entry[] = [],
    ): Promise<Reply> {
      const conn = await h.connect();
      conns.push(conn);
      const token = await conn.token([[plugin, JSON.stringify(conf)]]);
      const [{ reply }] = await Promise.all([
        conn.reqCall({ id: 2, token, headers }),
        bystander.check(),
      ]);
      await bystander.check();
      equal(h.supervisor(plugin).restarts, 0, `${plugin}'s sandbox was not restarted`);
      return reply;
    }

    try {
      await t.step("read a file through every file API (a granted file reads fine)", async () => {
        const conf = {
          granted: `${grantedDir}/granted.txt`,
          secret: `${secretDir}/secret.txt`,
          runnerFile: `${SUITE_DIR}../../runner/config/config.ts`,
        };
        const reply = await attack("read_file", conf);
        equal(stopHeader(reply, "x-granted"), "granted content");
        expectRoutes(reply, {
          readTextFile: PERMISSION,
          readFileSync: PERMISSION,
          open: PERMISSION,
          stat: PERMISSION,
          readDir: PERMISSION,
          fetchFileUrl: PERMISSION,
          nodeReadFileSync: PERMISSION,
          nodeReadFile: PERMISSION,
          computedImport: /^TypeError$/,
          procEnviron: PERMISSION,
          runnerSource: PERMISSION,
          etcPasswd: PERMISSION,
        });
        ok(!stopHeader(reply, "x-detail")!.includes(SECRET));

        // Uncaught, the refusal is the call's outcome: counted "denied", answered by policy.
        const before = h.counts("read_file").denied;
        const conn = await h.connect();
        conns.push(conn);
        const token = await conn.token([["read_file", JSON.stringify(conf)]]);
        const { reply: failed } = await conn.reqCall({ token, headers: [["x-uncaught", "1"]] });
        deepEqual(failed, { rpc: 0, code: 1 });
        equal(h.counts("read_file").denied, before + 1);
      });

      await t.step("read a file through a literal import()", async () => {
        const reply = await attack("import_file");
        expectRoutes(reply, {
          literalEtcPasswd: /^TypeError$/,
          literalEtcHostsJson: /^TypeError$/,
          literalRunnerCode: /^TypeError$/,
          literalDenoJson: /^TypeError$/,
          literalProcEnviron: /^TypeError$/,
          computedEtcPasswd: /^TypeError$/,
        });
        const detail = stopHeader(reply, "x-detail")!;
        match(detail, /Requires read access/);
        // The first line of /etc/passwd (root's entry) never shows in an error message.
        ok(!/root:/.test(detail), detail);
      });

      await t.step("environment variables (a granted one reads fine)", async () => {
        const reply = await attack("env_vars", { granted: "A6_TEST_GRANTED" });
        equal(stopHeader(reply, "x-granted"), "granted-value");
        expectRoutes(reply, {
          home: PERMISSION,
          path: PERMISSION,
          secret: PERMISSION,
          toObject: PERMISSION,
          has: PERMISSION,
          set: PERMISSION,
          nodeEnv: PERMISSION,
          nodeEnvKeys: PERMISSION,
        });
      });

      await t.step("network to hosts that were not granted (the granted one works)", async () => {
        const reply = await attack("net_reach", {
          granted: `127.0.0.1:${grantedPort}`,
          other: `127.0.0.1:${otherPort}`,
          runnerSocket: h.socket,
        });
        equal(stopHeader(reply, "x-granted"), "200 granted server");
        expectRoutes(reply, {
          fetchOtherPort: PERMISSION,
          fetchPublic: PERMISSION,
          connectOther: PERMISSION,
          listen: PERMISSION,
          resolveDns: PERMISSION,
          webSocket: PERMISSION,
          nodeNet: PERMISSION,
          runnerSocket: PERMISSION,
          inspectorPort: PERMISSION,
        });
      });

      await t.step("the inspector port, even for a plugin granted all of 127.0.0.1", async () => {
        const reply = await attack("net_inspector", { granted: `127.0.0.1:${grantedPort}` });
        equal(stopHeader(reply, "x-granted"), "200 granted server");
        expectRoutes(reply, {
          fetchInspector: PERMISSION,
          connectInspector: PERMISSION,
          localhostInspector: PERMISSION,
        });
      });

      await t.step("subprocesses", async () => {
        const reply = await attack("subprocess");
        expectRoutes(reply, {
          denoCommand: PERMISSION,
          denoCommandSpawn: PERMISSION,
          nodeExecSync: PERMISSION,
          nodeSpawnSync: PERMISSION,
          nodeExecFile: PERMISSION,
          permissionQuery: PERMISSION,
        });
      });

      await t.step("FFI", async () => {
        const reply = await attack("ffi");
        expectRoutes(reply, {
          dlopen: PERMISSION,
          dlopenPath: PERMISSION,
          nodeDlopen: PERMISSION,
          unsafePointer: PERMISSION,
        });
      });

      await t.step("Deno.kill / process.kill of its own process (incl. SIGUSR1)", async () => {
        const reply = await attack("kill_self");
        expectRoutes(reply, {
          denoKillUsr1: PERMISSION,
          denoKillKill: PERMISSION,
          denoKillStop: PERMISSION,
          nodeKillUsr1: PERMISSION,
          nodeKillKill: PERMISSION,
          nodeKillGroup: PERMISSION,
          nodeAbort: PERMISSION,
          debugProcess: PERMISSION,
        });
        equal(h.linesMatching(/Debugger listening/).length, 0);
      });

      await t.step("Deno.kill / process.kill of the runner (Deno.ppid)", async () => {
        const reply = await attack("kill_runner");
        const learned = stopHeader(reply, "x-learned")!;
        // What leaks: the sandbox's pid and the runner's; neither can be signalled.
        const pid = h.supervisor("kill_runner").pid;
        equal(learned, `pid=${pid} ppid=${Deno.pid} node=${pid}/${Deno.pid}`);
        expectRoutes(reply, {
          denoKill: PERMISSION,
          denoKillTerm: PERMISSION,
          denoKillUsr1: PERMISSION,
          nodeKill: PERMISSION,
          nodeKillUsr1: PERMISSION,
          procStatus: PERMISSION,
        });
      });

      await t.step("SIGTERM hijack (signal listeners)", async () => {
        const reply = await attack("sigterm_hijack");
        expectRoutes(reply, {
          denoSigterm: PERMISSION,
          denoSigint: PERMISSION,
          denoSigusr1: PERMISSION,
          nodeOn: PERMISSION,
          nodeOnce: PERMISSION,
          nodePrepend: PERMISSION,
          nodeAddListener: PERMISSION,
        });
      });

      await t.step("BroadcastChannel to another plugin in the same process", async () => {
        const reply = await attack("broadcast");
        expectRoutes(reply, {
          global: /^ReferenceError$/,
          prototype: /^ReferenceError$/,
          selfConstructor: /^ReferenceError$/,
          workerThreads: /^TypeError$/,
          getBuiltinModule: PERMISSION,
          webLocks: /^TypeError$/,
        });
        const conn = await h.connect();
        conns.push(conn);
        const token = await conn.token([["broadcast_victim", "{}"]]);
        const { reply: victim } = await conn.reqCall({ token });
        equal(stopBody(victim), "victim ok");
        equal(stopHeader(victim, "x-received"), "nothing");
        equal(stopHeader(victim, "x-could-listen"), "no");
      });

      await t.step("Cache API and Web Storage writes", async () => {
        const reply = await attack("cache_api");
        expectRoutes(reply, {
          global: /^ReferenceError$/,
          prototype: /^ReferenceError$/,
          getter: /^ReferenceError$/,
          constructor: /^ReferenceError$/,
          localStorage: /^ReferenceError$/,
        });
      });

      await t.step("remote, npm:, jsr: and data: imports", async () => {
        const reply = await attack("remote_import", { local: `127.0.0.1:${otherPort}` });
        // The security property, not Deno's wording (which differs between a machine whose
        // caches hold a package and a new one): every route failed, nothing was fetched, and
        // nothing of /etc/passwd came back. `data:` code loads, but runs with the plugin's own
        // permissions, so its read of /etc/passwd is refused like any other.
        const routes = deniedRoutes(reply);
        deepEqual(
          [...routes.keys()].sort(),
          ["dataUrl", "esmSh", "https", "jsr", "localHttp", "npm", "npmUnknown"],
        );
        for (const [route, error] of routes) {
          if (route === "dataUrl") continue;
          match(error, /^(TypeError|NotCapable|PermissionDenied)$/, `route ${route}`);
        }
        const detail = stopHeader(reply, "x-detail")!;
        match(detail, /dataUrl: data module ran; \/etc\/passwd: (NotCapable|PermissionDenied)\b/);
        ok(!/root:/.test(detail));
        ok(!served.some((path) => path.includes("secret")), `served: ${served.join(", ")}`);
      });

      await t.step("a nested worker asking for more permissions (or no hardening)", async () => {
        const reply = await attack("nested_worker");
        expectRoutes(reply, {
          global: /^ReferenceError$/,
          morePermissions: /^ReferenceError$/,
          prototype: /^ReferenceError$/,
          workerThreads: /^TypeError$/,
          workerThreadsEval: /^TypeError$/,
          getBuiltinModule: PERMISSION,
          commonJsRequire: PERMISSION,
          sharedWorker: /^ReferenceError$/,
        });
        equal(h.linesMatching(/Debugger listening/).length, 0);
      });

      await t.step("node:inspector, node:module hooks and node:v8 flags", async () => {
        const reply = await attack("inspector_open");
        expectRoutes(reply, {
          nodeInspector: /^TypeError$/,
          inspectorPromises: /^TypeError$/,
          bareInspector: /^TypeError$/,
          nodeModule: /^TypeError$/,
          nodeV8: /^TypeError$/,
        });
        match(stopHeader(reply, "x-detail")!, /node:inspector is not available to plugins/);
      });

      await t.step("Deno.permissions.request", async () => {
        const reply = await attack("permissions_request");
        expectRoutes(reply, {
          request: PERMISSION,
          requestSync: PERMISSION,
          requestEnv: PERMISSION,
          replaceRequest: /^TypeError$/,
          readRootAfter: PERMISSION,
          writeAfter: PERMISSION,
        });
      });

      await t.step("Deno.exit, self.close and process.exit", async () => {
        const reply = await attack("exit_self", {}, [["x-go", "1"]]);
        expectRoutes(reply, {
          denoExit: PERMISSION,
          selfClose: /^ReferenceError$/,
          protoClose: /^ReferenceError$/,
          nodeExit: PERMISSION,
          nodeReallyExit: PERMISSION,
        });
        const conn = await h.connect();
        conns.push(conn);
        const token = await conn.token([["exit_self", "{}"]]);
        equal(stopBody((await conn.reqCall({ token })).reply), "alive");
      });

      await t.step("Deno.args and the other traces of how the sandbox started", async () => {
        const reply = await attack("deno_args");
        const seen = stopHeader(reply, "x-seen")!;
        const parsed = JSON.parse(seen);
        deepEqual(parsed.args, []);
        equal(parsed.mainModule, "");
        equal(parsed.cwd, "/");
        deepEqual(parsed.argv, [Deno.execPath()]);
        ok(!/sandbox|\.sock|a6-deno-runner/.test(seen), seen);
        expectRoutes(reply, {
          execPath: PERMISSION,
          cmdline: PERMISSION,
          environ: PERMISSION,
          fdLinks: PERMISSION,
        });
      });

      await t.step("Deno[Symbol.for('Deno.internal')] and other internals", async () => {
        const reply = await attack("internals");
        expectRoutes(reply, {
          internalSymbol: /^ReferenceError$/,
          internalProperty: /^ReferenceError$/,
          core: /^ReferenceError$/,
          bootstrap: /^ReferenceError$/,
          nodeBootstrap: /^(ReferenceError|Error)$/,
          extImport: /^TypeError$/,
        });
      });

      await t.step(
        "prototype-chain tricks to recover postMessage and close, then flood",
        async () => {
          const reply = await attack("proto_tricks");
          expectRoutes(reply, {
            global: /^ReferenceError$/,
            selfPost: /^ReferenceError$/,
            prototype: /^ReferenceError$/,
            prototypeChain: /^ReferenceError$/,
            dedicatedScope: /^ReferenceError$/,
            workerScope: /^ReferenceError$/,
            constructorProto: /^ReferenceError$/,
            close: /^ReferenceError$/,
          });
        },
      );

      await t.step("the worker's own channel, opened before the plugin loaded", async () => {
        const conn = await h.connect();
        conns.push(conn);
        // The channel's path, as a plugin that learnt it somehow would know it: the runner (in
        // this process) makes it in its channel directory when the sandbox starts.
        const watcher = Deno.watchFs(await channelDirectory());
        const created = (async () => {
          for await (const event of watcher) {
            const path = event.paths.find((p) => /\/plugin_channel_reopen-\d+\.sock$/.test(p));
            if (path) return path;
          }
          return "";
        })();
        const token = await conn.token([["channel_reopen", "{}"]]);
        const channel = await created;
        watcher.close();
        match(channel, /\.sock$/);
        const { reply } = await conn.reqCall({ token, headers: [["x-channel", channel]] });
        expectRoutes(reply, { connect: PERMISSION, stat: PERMISSION, netQuery: PERMISSION });
        await bystander.check();
      });

      await t.step("prototype pollution through the returned action list", async () => {
        const conn = await h.connect();
        conns.push(conn);
        // The polluter first, then `say` in the same chain: say must see nothing unusual.
        const token = await conn.token([
          ["proto_pollution", "{}"],
          ["say", JSON.stringify({ body: "after pollution" })],
        ]);
        const [{ reply }] = await Promise.all([conn.reqCall({ token }), bystander.check()]);
        equal(stopBody(reply), "after pollution");
        // Stop headers are say's alone, then the polluter's response headers are dropped by the
        // stop; a chain that ends in the polluter shows its list as plain entries instead.
        const alone = await conn.token([["proto_pollution", "{}"]]);
        const { reply: rewrite } = await conn.reqCall({ token: alone });
        if (rewrite.rpc !== 2 || rewrite.action !== "rewrite") {
          throw new Error(JSON.stringify(rewrite));
        }
        const names = ["__proto__", "constructor", "hasOwnProperty", "prototype"];
        // Request header names are lower case (as APISIX sends them); the values are intact.
        const lower = names.map((n) => n.toLowerCase());
        deepEqual(rewrite.headers.map(([n]) => n).sort(), [...lower, "x-admin"].sort());
        deepEqual(
          rewrite.headers.map(([n, v]) => `${n}=${v}`).sort(),
          [...names.map((n) => `${n.toLowerCase()}=pwn-${n}`), "x-admin=true"].sort(),
        );
        deepEqual(rewrite.args.map(([n]) => n).sort(), [...names].sort());
        deepEqual(rewrite.respHeaders.map(([n]) => n).sort(), [...lower].sort());
        // The runner's own realm is untouched.
        equal(({} as Record<string, unknown>).polluted, undefined);
        equal(([] as unknown as Record<string, unknown>).evil, undefined);
        await bystander.check();
      });

      await t.step("console and stdio output is captured under the plugin's name", async () => {
        const reply = await attack("console_output");
        expectRoutes(reply, {
          denoStdout: /^TypeError$/,
          denoStderr: /^TypeError$/,
          denoStdin: /^TypeError$/,
          nodeStdin: PERMISSION,
        });
        await h.waitForLine(/a6\.plugin\.console_output.*console\.log from the plugin/);
        await h.waitForLine(/a6\.plugin\.console_output.*console\.error from the plugin/);
        await h.waitForLine(/a6\.plugin\.console_output.*process\.stdout\.write from the plugin/);
        await h.waitForLine(/sandbox plugin:console_output says.*fd 2 from the plugin/);
        equal(h.linesMatching(/fd 1 from the plugin/).length, 0);
      });

      await t.step("ordinary Node compatibility still works after the hardening", async () => {
        const conn = await h.connect();
        conns.push(conn);
        const token = await conn.token([[
          "node_user",
          JSON.stringify({ variable: "A6_TEST_GRANTED" }),
        ]]);
        const { reply } = await conn.reqCall({ token, path: "/abc" });
        equal(stopBody(reply), "node user ok");
        const digest = Array.from(
          new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode("/abc"))),
          (b) => b.toString(16).padStart(2, "0"),
        ).join("");
        equal(stopHeader(reply, "x-digest"), digest);
        equal(stopHeader(reply, "x-b64"), btoa("node ok"));
        equal(stopHeader(reply, "x-path"), "/a/c");
        equal(stopHeader(reply, "x-format"), "n=42");
        equal(stopHeader(reply, "x-env"), "granted-value");
        equal(stopHeader(reply, "x-uuid"), "36");
      });

      // Nothing above may have restarted a sandbox, and the bystander never failed.
      for (const supervisor of h.server.plugins.supervisors) equal(supervisor.restarts, 0);
      equal(h.counts("say").ok >= 40, true);
      deepEqual(
        Object.entries(h.counts("say")).filter(([k, v]) => k !== "ok" && v !== 0),
        [],
      );
    } finally {
      bystander.close();
      for (const conn of conns) conn.close();
      await h.close();
      abort.abort();
      await Deno.remove(secretDir, { recursive: true });
      await Deno.remove(grantedDir, { recursive: true });
    }
  },
});
