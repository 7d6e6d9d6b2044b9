import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { checkGrants, GrantRefused, whereItLeads } from "./grant_check.ts";

/**
 * A scratch tree: `plugin/` (what the plugin ships), `secret/`, `data/` and `out/` beside it.
 * Real path (the temporary directory may itself be reached through a link).
 */
async function scratch(): Promise<{ dir: string; [Symbol.asyncDispose](): Promise<void> }> {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "a6-grant-check-" }));
  for (const sub of ["plugin/lib/deep", "secret", "data", "out"]) {
    await Deno.mkdir(join(dir, sub), { recursive: true });
  }
  await Deno.writeTextFile(join(dir, "plugin/mod.ts"), "export default {};");
  await Deno.writeTextFile(join(dir, "plugin/lib/util.ts"), "export {};");
  await Deno.writeTextFile(join(dir, "secret/key"), "secret");
  await Deno.writeTextFile(join(dir, "data/file"), "data");
  return {
    dir,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Asserts the check refuses with a message naming `link` and `target` (JSON-quoted). */
async function refused(check: Promise<unknown>, ...named: string[]): Promise<string> {
  let message = "";
  await rejects(check, (error) => {
    ok(error instanceof GrantRefused, String(error));
    message = error.message;
    return true;
  });
  for (const text of named) ok(message.includes(JSON.stringify(text)), `${message} names ${text}`);
  return message;
}

Deno.test("a tree without links passes; its roots are granted as written and as real paths", async () => {
  await using s = await scratch();
  await Deno.symlink(join(s.dir, "data"), join(s.dir, "data-link"));
  const paths = await checkGrants("plugin p", {
    read: [join(s.dir, "plugin"), join(s.dir, "data-link")],
    write: [join(s.dir, "out")],
  });
  deepEqual(paths, {
    read: [join(s.dir, "plugin"), join(s.dir, "data-link"), join(s.dir, "data")],
    write: [join(s.dir, "out")],
  });
});

Deno.test("links that stay inside the readable trees pass", async () => {
  await using s = await scratch();
  const plugin = join(s.dir, "plugin");
  await Deno.symlink("lib", join(plugin, "lib-link")); // relative, to a directory
  await Deno.symlink("../util.ts", join(plugin, "lib/deep/util.ts")); // relative, to a file
  await Deno.symlink(join(plugin, "lib-link"), join(plugin, "link-to-link")); // a link to a link
  await Deno.symlink(".", join(plugin, "self"));
  await Deno.symlink("lib/missing.ts", join(plugin, "dangling-inside"));
  // Into another tree it may read.
  await Deno.symlink(join(s.dir, "data/file"), join(plugin, "data-file"));
  await checkGrants("plugin p", { read: [plugin, join(s.dir, "data")], write: [] });
});

Deno.test("a link in the readable tree that leads outside refuses the start, in every form", async () => {
  const cases: Array<[string, string, (dir: string) => string]> = [
    ["absolute, to the root", "/", () => "/"],
    ["absolute, to a directory", "$/secret", (dir) => join(dir, "secret")],
    ["relative, to a directory", "../secret", (dir) => join(dir, "secret")],
    ["relative, to a file", "../secret/key", (dir) => join(dir, "secret/key")],
    ["dangling, outside", "../secret/not-yet", (dir) => join(dir, "secret/not-yet")],
    ["through a parent of the tree", "../../", (dir) => join(dir, "..")],
  ];
  for (const [what, target, leadsTo] of cases) {
    await using s = await scratch();
    const link = join(s.dir, "plugin/lib/deep/pkgdata");
    // A relative target counts from the link's directory.
    const written = target.replace("$", s.dir).replace(/^\.\.\//, "../../../");
    await Deno.symlink(written, link);
    const expected = await Deno.realPath(leadsTo(s.dir)).catch(() => leadsTo(s.dir));
    const message = await refused(
      checkGrants("plugin leak", { read: [join(s.dir, "plugin")], write: [] }),
      link,
      expected,
    );
    ok(message.startsWith("plugin leak: "), `${what}: ${message}`);
  }
});

Deno.test("a link to a link is followed to its end", async () => {
  await using s = await scratch();
  const plugin = join(s.dir, "plugin");
  // plugin/chain -> plugin/lib/hop (a link inside) -> data/hop (a link outside) -> secret/key
  await Deno.symlink("../secret/key", join(s.dir, "data/hop"));
  await Deno.symlink("../../data/hop", join(plugin, "lib/hop"));
  await Deno.symlink("lib/hop", join(plugin, "chain"));
  await refused(
    checkGrants("plugin p", { read: [plugin], write: [] }),
    join(plugin, "chain"),
    join(s.dir, "secret/key"),
  );
});

Deno.test("a link loop refuses the start", async () => {
  await using s = await scratch();
  const plugin = join(s.dir, "plugin");
  await Deno.symlink("b", join(plugin, "a"));
  await Deno.symlink("a", join(plugin, "b"));
  const message = await refused(checkGrants("plugin p", { read: [plugin], write: [] }));
  ok(/link loop/.test(message), message);
});

Deno.test("the module file itself as a link out of its directory refuses the start", async () => {
  await using s = await scratch();
  const elsewhere = join(s.dir, "data/leak.ts");
  await Deno.writeTextFile(elsewhere, "export default {};");
  await Deno.remove(join(s.dir, "plugin/mod.ts"));
  await Deno.symlink(elsewhere, join(s.dir, "plugin/mod.ts"));
  await refused(
    checkGrants("plugin p", { read: [join(s.dir, "plugin")], write: [] }),
    join(s.dir, "plugin/mod.ts"),
    elsewhere,
  );
});

Deno.test("a granted link is the operator's choice (a Kubernetes secret mount)", async () => {
  await using s = await scratch();
  // /etc/secret/key -> ..data/key, ..data -> ..2024_x
  const mount = join(s.dir, "mount");
  await Deno.mkdir(join(mount, "..2024_x"), { recursive: true });
  await Deno.writeTextFile(join(mount, "..2024_x/key"), "k");
  await Deno.symlink("..2024_x", join(mount, "..data"));
  await Deno.symlink("..data/key", join(mount, "key"));
  const paths = await checkGrants("plugin p", { read: [join(mount, "key")], write: [] });
  deepEqual(paths.read, [join(mount, "key"), join(mount, "..2024_x/key")]);
  // The whole mount, with its links inside, passes as well.
  await checkGrants("plugin p", { read: [mount], write: [] });
});

Deno.test("a link in a write grant may lead only into the write grants", async () => {
  await using s = await scratch();
  const out = join(s.dir, "out");
  await Deno.mkdir(join(s.dir, "out2"));
  await Deno.symlink("../out2", join(out, "other-grant"));
  await checkGrants("plugin p", { read: [], write: [out, join(s.dir, "out2")] });
  // Into a directory it may only read: it would write there.
  await Deno.symlink("../plugin", join(out, "into-module"));
  const message = await refused(
    checkGrants("plugin p", { read: [join(s.dir, "plugin")], write: [out, join(s.dir, "out2")] }),
    join(out, "into-module"),
    join(s.dir, "plugin"),
  );
  ok(/outside what it may write/.test(message), message);
});

Deno.test("a dangling link in a write grant refuses when a write through it would land outside", async () => {
  await using s = await scratch();
  const out = join(s.dir, "out");
  await Deno.symlink("../secret/created-later", join(out, "log"));
  await refused(
    checkGrants("plugin p", { read: [], write: [out] }),
    join(out, "log"),
    join(s.dir, "secret/created-later"),
  );
});

Deno.test("a file in a write grant with a name outside the write grants refuses the start", async () => {
  await using s = await scratch();
  const out = join(s.dir, "out");
  // Names inside the write grants only: fine.
  await Deno.writeTextFile(join(out, "a"), "a");
  await Deno.link(join(out, "a"), join(out, "b"));
  await checkGrants("plugin p", { read: [], write: [out] });
  // A hard link to a file elsewhere: a write would change that file.
  await Deno.link(join(s.dir, "secret/key"), join(out, "key"));
  const message = await refused(checkGrants("plugin p", { read: [], write: [out] }));
  ok(/hard link/.test(message) && message.includes("/out/key"), message);
  // In readable trees a file with several names is fine (Deno's node_modules hard-links
  // package files from its cache).
  await checkGrants("plugin p", { read: [out], write: [] });
});

Deno.test("a tree too large to check refuses the start, naming the grant", async () => {
  await using s = await scratch();
  const message = await refused(
    checkGrants("plugin p", { read: [join(s.dir, "plugin")], write: [] }, { maxEntries: 3 }),
    join(s.dir, "plugin"),
  );
  ok(/more than 3 entries/.test(message), message);
});

Deno.test("a grant of everything, of /proc, or of a path that does not exist is not walked", async () => {
  await using s = await scratch();
  await checkGrants("plugin p", { read: ["/"], write: ["/"] }, { maxEntries: 1 });
  await checkGrants("plugin p", { read: ["/proc", "/dev/null"], write: [] }, { maxEntries: 1 });
  const paths = await checkGrants("plugin p", {
    read: [],
    write: [join(s.dir, "missing/out.log")],
  }, { maxEntries: 1 });
  deepEqual(paths.write, [join(s.dir, "missing/out.log")]);
});

Deno.test("paths in a refusal are quoted: a file name cannot forge a log line", async () => {
  await using s = await scratch();
  const link = join(s.dir, "plugin", 'x\nlevel=ERROR msg="forged"');
  await Deno.symlink("/", link);
  const message = await refused(
    checkGrants("plugin p", { read: [join(s.dir, "plugin")], write: [] }),
  );
  equal(message.includes("\n"), false, message);
});

Deno.test("whereItLeads follows links part by part where the path does not exist", async () => {
  await using s = await scratch();
  await Deno.symlink("secret", join(s.dir, "s"));
  await Deno.symlink("s/missing/../key", join(s.dir, "dangling"));
  deepEqual(await whereItLeads(join(s.dir, "dangling/x")), {
    path: join(s.dir, "secret/key/x"),
    loops: false,
  });
  // `..` after a link goes to the link target's parent, as the kernel's does.
  await Deno.symlink("plugin/lib/deep", join(s.dir, "deep"));
  deepEqual(await whereItLeads(`${s.dir}/deep/../nothing`), {
    path: join(s.dir, "plugin/lib/nothing"),
    loops: false,
  });
});

Deno.test("links may also lead into paths the caller allows besides the trees", async () => {
  await using s = await scratch();
  // The sandbox code's node_modules may link to a plugin of the same sandbox.
  const code = join(s.dir, "code");
  await Deno.mkdir(code);
  await Deno.symlink("../plugin", join(code, "member"));
  await refused(checkGrants("the sandbox code", { read: [code], write: [] }));
  await checkGrants("the sandbox code", { read: [code], write: [] }, {
    alsoReadable: [join(s.dir, "plugin")],
  });
});

Deno.test("a grant inside the plugin's own files is not the operator's link", async () => {
  await using s = await scratch();
  const plugin = join(s.dir, "plugin");
  // The package ships `cache -> ../secret`; the operator grants what looks like its cache.
  await Deno.symlink("../secret", join(plugin, "cache"));
  for (const kind of ["read", "write"] as const) {
    const roots = { read: [plugin], write: [] as string[] };
    roots[kind] = [...roots[kind], join(plugin, "cache")];
    const message = await refused(checkGrants("plugin p", roots), join(s.dir, "secret"));
    ok(message.includes(JSON.stringify(join(plugin, "cache"))), message);
  }
  await refused(
    checkGrants("plugin p", {
      read: [plugin, join(plugin, "cache")],
      write: [join(plugin, "cache")],
    }),
    join(s.dir, "secret"),
  );
  // A real directory there, or a link that stays inside, is fine.
  await Deno.remove(join(plugin, "cache"));
  await Deno.symlink("lib", join(plugin, "cache"));
  await checkGrants("plugin p", { read: [plugin, join(plugin, "cache")], write: [] });
  await Deno.remove(join(plugin, "cache"));
  await Deno.mkdir(join(plugin, "cache"));
  await checkGrants("plugin p", { read: [plugin], write: [join(plugin, "cache")] });
});

Deno.test("a module directory that is a link inside a granted package root must stay inside", async () => {
  await using s = await scratch();
  const plugin = join(s.dir, "plugin");
  await Deno.writeTextFile(join(s.dir, "secret/mod.ts"), "export default {};");
  await Deno.symlink("../secret", join(plugin, "dist"));
  // Alone, `dist` is the configured path: the operator's (see docs/sandbox.md, Links).
  await checkGrants("plugin p", { read: [join(plugin, "dist")], write: [] });
  // With the package's top directory granted too, `dist` is a link inside it.
  await refused(
    checkGrants("plugin p", { read: [join(plugin, "dist"), plugin], write: [] }),
    join(s.dir, "secret"),
  );
});
