import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { join } from "node:path";
import { ConfigError, parseConfig } from "./config.ts";
import { linksLeaving } from "../ops/install.ts";
import { sandboxRunArgs } from "../sandboxes/process_carrier.ts";
import { workerPermissions } from "../sandboxes/worker_permissions.ts";
import { npmPluginDirectory, packageDirectoryOf, parseNpmSpec, RUNNER_ROOT } from "./packages.ts";

Deno.test("parseNpmSpec takes a name and an exact version, nothing looser", () => {
  deepEqual(parseNpmSpec("npm:@acme/apisix-plugin-x@1.2.3"), {
    name: "@acme/apisix-plugin-x",
    version: "1.2.3",
  });
  deepEqual(parseNpmSpec("npm:x@1.0.0-beta.1"), { name: "x", version: "1.0.0-beta.1" });
  for (const loose of ["npm:x", "npm:x@^1", "npm:x@latest", "npm:@a/b@1.2", "npm:X@1.0.0"]) {
    equal(parseNpmSpec(loose), null, loose);
  }
});

Deno.test("a module is in a package when its directory has a deno.json (not the runner's)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "mod.ts"), "");
    equal(packageDirectoryOf(join(dir, "mod.ts")), null);
    await Deno.writeTextFile(join(dir, "deno.json"), "{}");
    equal(packageDirectoryOf(join(dir, "mod.ts")), dir);
    equal(packageDirectoryOf(join(RUNNER_ROOT, "main.ts")), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("config: packages and npm: plugins, and what they may not be", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const name of ["a", "b"]) {
      await Deno.mkdir(join(dir, name));
      await Deno.writeTextFile(join(dir, name, "deno.json"), "{}");
    }
    const file = join(dir, "runner.json");
    const parse = (plugins: Record<string, unknown>) =>
      parseConfig({ bundled: false, plugins }, file);
    const config = parse({
      a: { module: "./a/mod.ts" },
      single: { module: "./single.ts" },
      x: { module: "npm:@acme/apisix-plugin-x@1.2.3" },
      a2: { module: "./a/other.ts", isolation: "shared", group: "g" },
      a3: { module: "./a/third.ts", isolation: "shared", group: "g" },
    });
    equal(config.plugins.get("a")!.package, join(dir, "a"));
    equal(config.plugins.get("single")!.package, null);
    equal(config.plugins.get("x")!.package, npmPluginDirectory(dir, "x"));
    equal(config.plugins.get("x")!.module, "npm:@acme/apisix-plugin-x@1.2.3");

    throws(
      () =>
        parse({
          a: { module: "./a/mod.ts", isolation: "shared", group: "g" },
          b: { module: "./b/mod.ts", isolation: "shared", group: "g" },
        }),
      (error: Error) =>
        error instanceof ConfigError && /plugins\.b\.group: .*one package/.test(error.message),
    );
    throws(
      () => parse({ a: { module: "./a/mod.ts", isolation: "inline" } }),
      /plugins\.a\.isolation: .*plugin package/,
    );
    throws(
      () => parse({ a: { module: "./a/mod.ts", permissions: { write: ["./a/data"] } } }),
      /plugins\.a\.permissions\.write: .*own package/,
    );
    throws(() => parse({ x: { module: "npm:x@^1.0.0" } }), /npm:<name>@<exact version>/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("linksLeaving finds links that lead out of a package, and only those", async () => {
  const dir = await Deno.makeTempDir();
  const outside = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(dir, "node_modules/.deno/x@1/node_modules/x"), { recursive: true });
    await Deno.symlink(".deno/x@1/node_modules/x", join(dir, "node_modules/x"));
    deepEqual(await linksLeaving(dir, dir), []);
    await Deno.symlink(outside, join(dir, "node_modules/escape"));
    const found = await linksLeaving(dir, dir);
    equal(found.length, 1);
    match(found[0]!, /node_modules\/escape -> /);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("a package's sandbox starts with the package's installed config and reads the package", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(dir, "pkg"));
    await Deno.writeTextFile(join(dir, "pkg", "deno.json"), "{}");
    const plugins = [
      ...parseConfig(
        { bundled: false, plugins: { p: { module: "./pkg/mod.ts" } } },
        join(dir, "runner.json"),
      ).plugins.values(),
    ];
    const channel = "/tmp/a6-x/p-1.sock";
    const args = sandboxRunArgs(plugins, channel);
    for (const f of ["--cached-only", "--frozen", "--node-modules-dir=manual", "--deny-import"]) {
      ok(args.includes(f), f);
    }
    ok(args.includes(`--config=${join(dir, "pkg", ".apisix-runner", "deno.json")}`));
    const read = args.find((a) => a.startsWith("--allow-read="))!.slice(13).split(",");
    ok(read.includes(join(dir, "pkg")));
    ok(!read.includes(join(RUNNER_ROOT, "node_modules")), "not the runner's node_modules");
    deepEqual(workerPermissions(plugins[0]!).read, [join(dir, "pkg")]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a compiled binary refuses plugin packages and npm: plugins, naming the key", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(dir, "pkg"));
    await Deno.writeTextFile(join(dir, "pkg", "deno.json"), "{}");
    const file = join(dir, "runner.json");
    for (const module of ["./pkg/mod.ts", "npm:@acme/apisix-plugin-x@1.2.3"]) {
      const config = { bundled: false, plugins: { p: { module } } };
      throws(() => parseConfig(config, file, true), (error: unknown) => {
        ok(error instanceof ConfigError);
        match(error.message, /plugins\.p\.module: expected a bundled plugin or a single-file/);
        match(error.message, /cannot load a plugin package/);
        return true;
      });
      // The same configuration is fine when the runner runs from a checkout.
      equal(parseConfig(config, file, false).plugins.get("p")!.bundled, false);
    }
    // A single-file plugin is fine in the binary too.
    const single = { bundled: false, plugins: { s: { module: "./single.ts" } } };
    equal(parseConfig(single, file, true).plugins.get("s")!.package, null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
