/**
 * The links suite: a plugin that ships (or is granted) a symbolic link leading out of what it
 * may read or write never runs: its sandbox start is refused, one log line names the link and
 * where it leads, every call is answered by the failure policy, nothing leaks, and a healthy
 * plugin (bundled `say`) on another connection keeps answering. Links that stay inside work.
 * Each case is a copy of `plugins/links/leak.ts` in a scratch directory of its own, with links
 * beside it; all cases share one runner, each plugin has its own sandbox.
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import type { ApisixConn } from "../support/apisix.ts";
import { sleep, startBystander, startHarness, stopBody, SUITE_DIR } from "./harness.ts";

const FIXTURE = join(SUITE_DIR, "plugins/links/leak.ts");
const SECRET = `LINK-SECRET-${crypto.randomUUID()}`;
const POLICY_ANSWER = { rpc: 0, code: 1 }; // SERVICE_UNAVAILABLE (failure policy closed)

// The scratch tree, by real path: secret/ holds what no plugin may read.
const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "a6-links-" }));
const secret = join(root, "secret");
await Deno.mkdir(secret);
await Deno.writeTextFile(join(secret, "secret.txt"), SECRET);
await Deno.writeTextFile(join(secret, "secret.json"), JSON.stringify({ secret: SECRET }));

/** A plugin directory `root/<name>/` holding a copy of the fixture; returns its path. */
async function pluginDir(name: string): Promise<string> {
  const dir = join(root, name);
  await Deno.mkdir(dir, { recursive: true });
  await Deno.copyFile(FIXTURE, join(dir, "leak.ts"));
  return dir;
}

/** Makes directory `path` and returns it. */
async function dir(path: string): Promise<string> {
  await Deno.mkdir(path, { recursive: true });
  return path;
}

/** A refused case: the link the log must name and where it leads, and the conf to call with. */
interface Refused {
  link: string;
  target: string;
  conf: Record<string, unknown>;
  settings?: Record<string, unknown>;
}

const refused: Record<string, Refused> = {};

// An absolute link to the whole file system (the reproduction).
{
  const d = await pluginDir("root_link");
  await Deno.symlink("/", join(d, "pkgdata"));
  refused.root_link = {
    link: join(d, "pkgdata"),
    target: "/",
    conf: { file: "./pkgdata/etc/passwd" },
  };
}
// Absolute and relative links to a directory.
{
  const d = await pluginDir("absolute_dir");
  await Deno.symlink(secret, join(d, "pkgdata"));
  refused.absolute_dir = {
    link: join(d, "pkgdata"),
    target: secret,
    conf: { file: "./pkgdata/secret.txt", json: "./pkgdata/secret.json" },
  };
}
{
  const d = await pluginDir("relative_dir");
  await Deno.symlink("../secret", join(d, "pkgdata"));
  refused.relative_dir = {
    link: join(d, "pkgdata"),
    target: secret,
    conf: { file: "./pkgdata/secret.txt", json: "./pkgdata/secret.json" },
  };
}
// A link to a file.
{
  const d = await pluginDir("to_file");
  await Deno.symlink("../secret/secret.txt", join(d, "notes.txt"));
  refused.to_file = {
    link: join(d, "notes.txt"),
    target: join(secret, "secret.txt"),
    conf: { file: "./notes.txt" },
  };
}
// A link to a link (the second one outside the plugin's files).
{
  const d = await pluginDir("chain");
  await Deno.symlink("secret", join(root, "hop"));
  await Deno.symlink("../hop", join(d, "pkgdata"));
  refused.chain = {
    link: join(d, "pkgdata"),
    target: secret,
    conf: { file: "./pkgdata/secret.txt" },
  };
}
// A link inside a directory the operator granted.
{
  const granted = await dir(join(root, "granted"));
  await Deno.writeTextFile(join(granted, "ok.txt"), "granted");
  await Deno.symlink("../secret", join(granted, "pkgdata"));
  await pluginDir("in_read_grant");
  refused.in_read_grant = {
    link: join(granted, "pkgdata"),
    target: secret,
    conf: { file: join(granted, "pkgdata/secret.txt") },
    settings: { permissions: { read: [granted] } },
  };
}
// A link inside a write grant, leading where the plugin may not write.
{
  const out = await dir(join(root, "out"));
  await Deno.symlink("../secret", join(out, "spill"));
  await pluginDir("in_write_grant");
  refused.in_write_grant = {
    link: join(out, "spill"),
    target: secret,
    conf: { write: join(out, "spill/written.txt") },
    settings: { permissions: { write: [out] } },
  };
}
// A grant of what looks like the plugin's cache, shipped as a link by its package.
{
  const d = await pluginDir("grant_in_own_files");
  await Deno.symlink("../secret", join(d, "cache"));
  refused.grant_in_own_files = {
    link: join(d, "cache"),
    target: secret,
    conf: { file: "./cache/secret.txt", write: "./cache/written.txt" },
    settings: { permissions: { read: [join(d, "cache")], write: [join(d, "cache")] } },
  };
}
// A dangling link: a file created there later would be read.
{
  const d = await pluginDir("dangling");
  await Deno.symlink("../secret/later.txt", join(d, "later.txt"));
  refused.dangling = {
    link: join(d, "later.txt"),
    target: join(secret, "later.txt"),
    conf: { file: "./later.txt" },
  };
}
// The module file itself, a link to a file elsewhere.
{
  const elsewhere = await dir(join(root, "elsewhere"));
  await Deno.copyFile(FIXTURE, join(elsewhere, "leak.ts"));
  const d = await dir(join(root, "module_link"));
  await Deno.symlink(join(elsewhere, "leak.ts"), join(d, "leak.ts"));
  refused.module_link = { link: join(d, "leak.ts"), target: join(elsewhere, "leak.ts"), conf: {} };
}
// No inline case: an inline plugin runs on the runner's event loop with the runner's own
// permissions (config.ts refuses grants for it), so there is nothing a link could widen.

// A link loop: refused, with a message of its own.
const loopDir = await pluginDir("loop");
await Deno.symlink("b", join(loopDir, "a"));
await Deno.symlink("a", join(loopDir, "b"));

// Links that stay inside, as a package manager makes them: the plugin reads through them.
const insideDir = await pluginDir("inside");
await dir(join(insideDir, "data"));
await Deno.writeTextFile(join(insideDir, "data/inside.txt"), "inside");
await Deno.writeTextFile(join(insideDir, "data/secret.json"), JSON.stringify({ inside: true }));
await Deno.symlink("data", join(insideDir, "pkgdata"));
const pkg = await dir(join(insideDir, "node_modules/.deno/pkg@1.0.0/node_modules/pkg"));
await Deno.writeTextFile(join(pkg, "index.js"), "export default 1;");
await Deno.symlink(".deno/pkg@1.0.0/node_modules/pkg", join(insideDir, "node_modules/pkg"));

// The operator's own links: a module directory reached through one (a release behind a
// `current` link), and a granted file behind two (a Kubernetes secret mount).
await pluginDir("via_link_release");
await Deno.writeTextFile(join(root, "via_link_release/data.txt"), "released");
await Deno.symlink("via_link_release", join(root, "via_link"));
const mount = await dir(join(root, "mount/..2024_x"));
await Deno.writeTextFile(join(mount, "key"), "mounted key");
await Deno.symlink("..2024_x", join(root, "mount/..data"));
await Deno.symlink("..data/key", join(root, "mount/key"));

// Links made at run time, in a directory the plugin may read and write.
await pluginDir("runtime_links");
const rw = await dir(join(root, "rw"));

// Clean at first; a link appears while it runs, and its next start is refused.
const laterDir = await pluginDir("link_after_start");

/** Waits for `condition` (checked every 100 ms); fails after `timeoutMs`. */
async function until(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await sleep(100);
  }
}

const module = (name: string) => join(root, name, "leak.ts");
const CONFIG = {
  bundled: false,
  plugins: {
    say: {},
    ...Object.fromEntries(
      Object.entries(refused).map(([name, c]) => [name, { module: module(name), ...c.settings }]),
    ),
    loop: { module: module("loop") },
    inside: { module: module("inside") },
    runtime_links: { module: module("runtime_links"), permissions: { read: [rw], write: [rw] } },
    link_after_start: { module: module("link_after_start") },
    via_link: { module: module("via_link"), permissions: { read: [join(root, "mount/key")] } },
  },
};

Deno.test({
  name: "links suite: a link out of a plugin's files refuses its start; links inside work",
  // The runner is shared by every case; its timers and sockets outlive single steps.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const h = await startHarness(CONFIG);
    const bystander = await startBystander(h);
    const conns: ApisixConn[] = [];
    const connect = async () => {
      const conn = await h.connect();
      conns.push(conn);
      return conn;
    };

    /** The refusal lines (of the sandbox logger) naming `link` and where it leads, `target`. */
    const refusalLines = (link: string, target: string) =>
      h.linesMatching(/logger=a6\.sandbox .*failed to start/).filter((line) =>
        line.includes(`\\"${link}\\" `) && line.includes(`link to \\"${target}\\"`)
      );

    /** Three PrepareConfs (APISIX asks again each request): every one is answered by policy. */
    async function expectRefused(name: string, conf: unknown): Promise<void> {
      const conn = await connect();
      for (let i = 0; i < 3; i++) {
        const [prepared] = await Promise.all([
          conn.prepare([[name, JSON.stringify(conf)]], `route#${name}#${i}`),
          bystander.check(),
        ]);
        deepEqual(prepared, POLICY_ANSWER, `${name}: attempt ${i}`);
      }
      await bystander.check();
      equal(h.host(name).attached, false, `${name} never ran`);
    }

    try {
      for (const [name, c] of Object.entries(refused)) {
        await t.step(`refused: ${name}`, async () => {
          await expectRefused(name, c.conf);
          const lines = refusalLines(c.link, c.target);
          equal(lines.length, 1, `one line names ${c.link} -> ${c.target}:\n${h.lines.join("\n")}`);
          ok(/level=error/.test(lines[0]!), lines[0]);
        });
      }

      await t.step("refused: a link loop", async () => {
        await expectRefused("loop", {});
        const lines = h.linesMatching(/logger=a6\.sandbox .*plugin loop: .*is a link loop/);
        equal(lines.length, 1, h.lines.join("\n"));
      });

      await t.step("nothing was written through the write grant's link", async () => {
        equal(await Deno.stat(join(secret, "written.txt")).catch(() => null), null);
      });

      await t.step("links that stay inside: the plugin loads and reads through them", async () => {
        const conn = await connect();
        const token = await conn.token([[
          "inside",
          JSON.stringify({ file: "./pkgdata/inside.txt", json: "./pkgdata/secret.json" }),
        ]]);
        const [{ reply }] = await Promise.all([conn.reqCall({ token }), bystander.check()]);
        deepEqual(JSON.parse(stopBody(reply)), {
          readTextFile: "read:inside",
          nodeReadFileSync: "read:inside",
          fetchFileUrl: "read:inside",
          computedJsonImport: 'read:{"inside":true}',
          literalImport: 'read:{"inside":true}',
        });
      });

      await t.step("the operator's links (module directory, granted file) work", async () => {
        const conn = await connect();
        const token = await conn.token([["via_link", JSON.stringify({ file: "./data.txt" })]]);
        const [{ reply }] = await Promise.all([conn.reqCall({ token }), bystander.check()]);
        equal(JSON.parse(stopBody(reply)).readTextFile, "read:released");
        const keyConf = { file: join(root, "mount/key") };
        const keyToken = await conn.token([["via_link", JSON.stringify(keyConf)]]);
        const { reply: key } = await conn.reqCall({ token: keyToken });
        deepEqual(JSON.parse(stopBody(key)), {
          readTextFile: "read:mounted key",
          nodeReadFileSync: "read:mounted key",
          fetchFileUrl: "read:mounted key",
        });
      });

      await t.step("links made at run time are refused by Deno itself", async () => {
        const conn = await connect();
        const conf = { linkAt: rw, linkTo: join(secret, "secret.txt") };
        const token = await conn.token([["runtime_links", JSON.stringify(conf)]]);
        const [{ reply }] = await Promise.all([conn.reqCall({ token }), bystander.check()]);
        const body = stopBody(reply);
        ok(!body.includes(SECRET) && !body.includes("root:"), body);
        const results = JSON.parse(body) as Record<string, string>;
        for (const route of ["symlinkRoot", "symlinkFile", "symlinkRelative", "nodeSymlinkSync"]) {
          equal(results[route], "denied:NotCapable", `${route}: ${body}`);
        }
        // Deno wants read and write access to both names of a hard link.
        equal(results.hardLink, "denied:NotCapable", body);
        equal(results.nodeLinkSync, "denied:NotCapable", body);
        for (const route of ["readThroughRoot", "readThroughFile", "readThroughHard"]) {
          equal(results[route], "denied:NotFound", `${route}: ${body}`);
        }
        deepEqual(await Array.fromAsync(Deno.readDir(rw)), []);
      });

      await t.step("a link that appears while a plugin runs refuses its next start", async () => {
        const conn = await connect();
        const token = await conn.token([["link_after_start", JSON.stringify({})]]);
        deepEqual(JSON.parse(stopBody((await conn.reqCall({ token })).reply)), {});
        await Deno.symlink("../secret", join(laterDir, "pkgdata"));
        Deno.kill(h.supervisor("link_after_start").pid!, "SIGKILL");
        await h.waitForLine(/sandbox plugin:link_after_start failed to start: .*is a link to/);
        const { reply } = await conn.reqCall({ token });
        deepEqual(reply, POLICY_ANSWER);
        await bystander.check();
        // The files are checked again a while later: still refused, and not logged again.
        const supervisor = h.supervisor("link_after_start");
        const attempts = supervisor.restarts;
        await until(() => supervisor.restarts > attempts, "the next check");
        await supervisor.ensureStarted(); // The attempt in progress, or nothing after it.
        equal(supervisor.running, false);
        equal(refusalLines(join(laterDir, "pkgdata"), secret).length, 1);
        // Once the link is gone, the next check starts it again: no runner restart needed.
        await Deno.remove(join(laterDir, "pkgdata"));
        const ready = /sandbox plugin:link_after_start ready/;
        await until(() => h.linesMatching(ready).length === 2, "the start after the fix");
        deepEqual(JSON.parse(stopBody((await conn.reqCall({ token })).reply)), {});
        equal(refusalLines(join(laterDir, "pkgdata"), secret).length, 1);
      });

      await t.step("no secret reached any reply or log line", () => {
        ok(!h.lines.some((line) => line.includes(SECRET)));
        ok(!h.lines.some((line) => line.includes("root:x:0:0")));
      });
    } finally {
      for (const conn of conns) conn.close();
      bystander.close();
      await h.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});
