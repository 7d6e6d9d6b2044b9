/**
 * Plugin packages through the real CLI, runner and sandboxes: `install` into an empty
 * DENO_DIR, two packages pinning different versions of one library, a lock out of date, a
 * package never installed, and an `npm:` plugin from a registry stand-in on 127.0.0.1.
 */
import { deepEqual, equal, match, notEqual, ok } from "node:assert/strict";
import { ApisixConn, type Reply } from "../support/apisix.ts";
import { startRunner } from "../support/runner.ts";
import {
  answeringPlugin,
  runnerCommand,
  type StandIn,
  startRegistry,
  writeConfig,
  writePackage,
} from "./support.ts";

const LIB = "@a6test/lib";

const lib = (version: string) => ({
  name: LIB,
  version,
  files: { "index.js": `export const version = ${JSON.stringify(version)};\n` },
});

const NPM_PLUGIN = {
  name: "@a6test/apisix-plugin-hello",
  version: "1.2.3",
  dependencies: { [LIB]: "2.0.0" },
  files: {
    // An npm plugin exports a plain plugin object: code in node_modules resolves bare imports
    // with Node's rules (its own dependencies), not the runner's import map.
    "index.js": `import { version } from "${LIB}";
export default {
  name: "hello",
  requestFilter(_conf, _req, res) {
    res.status = 200;
    res.body = "hello from npm, lib " + version;
  },
};
`,
  },
};

/** A fresh DENO_DIR and HOME whose .npmrc sends the @a6test scope to the stand-in. */
async function environment(registry: StandIn): Promise<Record<string, string>> {
  const home = await Deno.makeTempDir({ prefix: "a6-home-" });
  await Deno.writeTextFile(`${home}/.npmrc`, `@a6test:registry=${registry.url}\n`);
  return { DENO_DIR: await Deno.makeTempDir({ prefix: "a6-deno-dir-" }), HOME: home };
}

async function call(socket: string, plugin: string): Promise<Reply> {
  const conn = await ApisixConn.connect(socket);
  try {
    const token = await conn.token([[plugin, "{}"]]);
    return (await conn.reqCall({ token })).reply;
  } finally {
    conn.close();
  }
}

function body(reply: Reply): string {
  if (reply.rpc !== 2 || reply.action !== "stop") throw new Error(JSON.stringify(reply));
  return new TextDecoder().decode(reply.body ?? new Uint8Array());
}

/** Every file under `dir` with its content (node_modules by link target), for "unchanged". */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (path: string) => {
    for await (const entry of Deno.readDir(path)) {
      const full = `${path}/${entry.name}`;
      if (entry.isSymlink) out.set(full, `-> ${await Deno.readLink(full)}`);
      else if (entry.isDirectory) await walk(full);
      else {
        const info = await Deno.stat(full);
        out.set(full, `${info.size} ${info.mtime?.getTime()}`);
      }
    }
  };
  await walk(dir);
  return out;
}

Deno.test({
  name: "packages: two packages pin two versions of one library, and an npm: plugin runs",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const registry = await startRegistry([lib("1.0.0"), lib("2.0.0"), NPM_PLUGIN]);
    const dir = await Deno.makeTempDir({ prefix: "a6-packages-" });
    try {
      const env = await environment(registry);
      // "one" lists the runner's API (from JSR, unreachable here): it still resolves to the
      // runner's own files and is not installed.
      // It also maps a name to its own directory, relative to its deno.json.
      await writePackage(`${dir}/one`, {
        lib: `npm:${LIB}@1.0.0`,
        "@apisix/deno-plugin-runner": "jsr:@apisix/deno-plugin-runner@0.1.0",
        "#own/": "./own/",
      }, {
        "mod.ts": answeringPlugin(
          "one",
          'import { version } from "lib"; import { prefix } from "#own/prefix.ts";',
          "prefix + version",
        ),
      });
      await Deno.mkdir(`${dir}/one/own`);
      await Deno.writeTextFile(`${dir}/one/own/prefix.ts`, 'export const prefix = "lib ";\n');
      // "two" pins another flatbuffers than the runner's sandbox code uses: each gets its own.
      await writePackage(`${dir}/two`, {
        lib: `npm:${LIB}@2.0.0`,
        flatbuffers: "npm:flatbuffers@24.3.25",
      }, {
        "mod.ts": answeringPlugin(
          "two",
          'import { version } from "lib"; import { Builder } from "flatbuffers";',
          '"lib " + version + (typeof Builder === "function" ? "" : " no flatbuffers")',
        ),
      });
      const config = await writeConfig(dir, {
        one: { module: "./one/mod.ts" },
        two: { module: "./two/mod.ts" },
        hello: { module: `npm:${NPM_PLUGIN.name}@${NPM_PLUGIN.version}` },
      });

      const installed = await runnerCommand("install", ["install", "--config", config], env);
      equal(installed.code, 0, installed.output);
      console.log(`install of 3 packages into an empty DENO_DIR: ${Math.round(installed.ms)} ms`);
      const lockOf = async (pkg: string) =>
        JSON.parse(await Deno.readTextFile(`${dir}/${pkg}/deno.lock`)).specifiers;
      deepEqual(await lockOf("one"), { [`npm:${LIB}@1.0.0`]: "1.0.0" });
      deepEqual(await lockOf("two"), {
        [`npm:${LIB}@2.0.0`]: "2.0.0",
        "npm:flatbuffers@24.3.25": "24.3.25",
      });
      const installedTwo = [...Deno.readDirSync(`${dir}/two/.apisix-runner/node_modules/.deno`)]
        .map((entry) => entry.name).filter((name) => name.startsWith("flatbuffers@")).sort();
      deepEqual(installedTwo, ["flatbuffers@24.3.25", "flatbuffers@25.9.23"]);
      const npmLock = JSON.parse(await Deno.readTextFile(`${dir}/npm_plugins/hello/deno.lock`));
      ok(npmLock.npm[`${LIB}@2.0.0`], "the npm plugin's dependency is pinned in its lock");

      // Installing twice changes nothing.
      const before = await snapshot(dir);
      const again = await runnerCommand("install", ["install", "--config", config], env);
      equal(again.code, 0, again.output);
      equal(again.output.match(/up to date/g)?.length, 3, again.output);
      deepEqual(await snapshot(dir), before);

      const checked = await runnerCommand("start", ["check", "--config", config], env);
      equal(checked.code, 0, checked.output);

      const runner = await startRunner({ args: ["--config", config], env });
      try {
        const started = performance.now();
        equal(body(await call(runner.socket, "one")), "lib 1.0.0");
        console.log(
          `first call through a fresh package sandbox: ${
            Math.round(performance.now() - started)
          } ms`,
        );
        equal(body(await call(runner.socket, "two")), "lib 2.0.0");
        equal(body(await call(runner.socket, "hello")), "hello from npm, lib 2.0.0");
      } finally {
        await runner.stop();
      }
    } finally {
      await registry.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "packages: a lock out of date and a missing install are refused with the fixing command",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const registry = await startRegistry([lib("1.0.0"), lib("2.0.0")]);
    const dir = await Deno.makeTempDir({ prefix: "a6-packages-" });
    try {
      const env = await environment(registry);
      const plugin = answeringPlugin("pkg", 'import { version } from "lib";', '"lib " + version');
      await writePackage(`${dir}/pkg`, { lib: `npm:${LIB}@1.0.0` }, { "mod.ts": plugin });
      const config = await writeConfig(dir, { pkg: { module: "./pkg/mod.ts" } });
      const fix = `deno task install --config ${config}`;

      // Never installed: check names the command; the runner answers by the failure policy.
      const unchecked = await runnerCommand("start", ["check", "--config", config], env);
      equal(unchecked.code, 1, unchecked.output);
      match(unchecked.output, /plugin {2}pkg: the plugin package .* is not installed: run `/);
      ok(unchecked.output.includes(fix), unchecked.output);
      const frozenMissing = await runnerCommand(
        "install",
        ["install", "--frozen", "--config", config],
        env,
      );
      equal(frozenMissing.code, 1, frozenMissing.output);
      match(frozenMissing.output, /deno\.lock is missing, and --frozen forbids creating it/);

      const runner = await startRunner({ args: ["--config", config], env });
      try {
        // The route's conf is refused (APISIX answers 503): its sandbox cannot start.
        const conn = await ApisixConn.connect(runner.socket);
        try {
          deepEqual(await conn.prepare([["pkg", "{}"]]), { rpc: 0, code: 1 });
        } finally {
          conn.close();
        }
        const line = await runner.waitForLine(/is not installed/);
        match(line, /deno task install/);
        // APISIX asks again and again: refused at once each time, one line for the refusal, and
        // no restart loop (a refusal is not a crash).
        const again = await ApisixConn.connect(runner.socket);
        try {
          for (let i = 0; i < 3; i++) {
            deepEqual(await again.prepare([["pkg", "{}"]]), { rpc: 0, code: 1 });
          }
        } finally {
          again.close();
        }
        const refusals = runner.lines.filter((l) =>
          /logger=a6\.sandbox .*failed to start: .*is not installed/.test(l)
        );
        equal(refusals.length, 1, refusals.join("\n"));
        equal(runner.lines.filter((l) => /sandbox .* ended/.test(l)).length, 0, "no crash loop");
        equal(runner.lines.filter((l) => / says: /.test(l)).length, 0, "no sandbox started");
      } finally {
        await runner.stop();
      }

      const installed = await runnerCommand("install", ["install", "--config", config], env);
      equal(installed.code, 0, installed.output);
      const frozen = await runnerCommand("install", ["install", "--frozen", "-c", config], env);
      equal(frozen.code, 0, frozen.output);

      // The package moves to 2.0.0 in its deno.json: the lock is out of date.
      await writePackage(`${dir}/pkg`, { lib: `npm:${LIB}@2.0.0` }, {});
      const stale = await runnerCommand("start", ["check", "--config", config], env);
      equal(stale.code, 1, stale.output);
      match(stale.output, /changed .* since it was installed: run `deno task install/);
      const refused = await runnerCommand("install", ["install", "--frozen", "-c", config], env);
      equal(refused.code, 1, refused.output);
      match(refused.output, /out of date/);
      const lockBefore = await Deno.readTextFile(`${dir}/pkg/deno.lock`);
      match(lockBefore, /@a6test\/lib@1\.0\.0/, "--frozen left the lock as it was");

      const updated = await runnerCommand("install", ["install", "--config", config], env);
      equal(updated.code, 0, updated.output);
      const lock = JSON.parse(await Deno.readTextFile(`${dir}/pkg/deno.lock`));
      deepEqual(lock.specifiers, { [`npm:${LIB}@2.0.0`]: "2.0.0" });
      notEqual(await Deno.readTextFile(`${dir}/pkg/deno.lock`), lockBefore);
      const rechecked = await runnerCommand("start", ["check", "--config", config], env);
      equal(rechecked.code, 0, rechecked.output);
    } finally {
      await registry.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
