import { deepEqual, equal, ok } from "node:assert/strict";
import { parseConfig, type PluginSettings } from "../config/config.ts";
import {
  checkSandboxPaths,
  revocations,
  sandboxMemoryLimitMb,
  sandboxRunArgs,
} from "./process_carrier.ts";
import { workerPermissions } from "./worker_permissions.ts";

const CHANNEL = "/tmp/a6-deno-runner-x/plugin_p-1.sock";

function settings(plugins: Record<string, unknown>): PluginSettings[] {
  return [...parseConfig({ bundled: false, plugins }, "/etc/a6/runner.json").plugins.values()];
}

function flag(args: string[], name: string): string[] | null {
  const found = args.find((a) => a.startsWith(`--${name}=`));
  return found ? found.slice(name.length + 3).split(",") : null;
}

Deno.test("a sandbox without grants gets only its code, its module and its channel", () => {
  const args = sandboxRunArgs(settings({ p: { module: "/opt/plugins/p.ts" } }), CHANNEL);
  for (const f of ["--no-prompt", "--cached-only", "--frozen", "--deny-import"]) {
    ok(args.includes(f), f);
  }
  ok(args.includes("--v8-flags=--max-old-space-size=256,--max-semi-space-size=4"));
  const read = flag(args, "allow-read")!;
  ok(read.includes("/opt/plugins"));
  ok(read.includes(CHANNEL));
  ok(read.some((p) => p.endsWith("/sandbox")));
  ok(!read.some((p) => p.endsWith("/runner")), "the runner's own code is not readable");
  deepEqual(flag(args, "allow-write"), [CHANNEL]);
  deepEqual(flag(args, "allow-net"), [`unix:${CHANNEL}`]);
  deepEqual(flag(args, "allow-env"), ["A6_SANDBOX_SECRET"]);
  ok(flag(args, "deny-net")!.includes("127.0.0.1:9229"));
  for (const never of ["allow-run", "allow-ffi", "allow-sys", "allow-all", "allow-import"]) {
    equal(args.some((a) => a.startsWith(`--${never}`)), false, never);
  }
  deepEqual(args.slice(-2), ["sandbox", CHANNEL]);
});

Deno.test("a shared group gets the union of its plugins' grants and the largest heap", () => {
  const group = settings({
    a: {
      module: "/opt/a/a.ts",
      isolation: "shared",
      group: "g",
      memoryMb: 64,
      permissions: { read: ["/data/a"], net: ["a.example:443"], import: ["cdn.example"] },
    },
    b: {
      module: "/opt/b/b.ts",
      isolation: "shared",
      group: "g",
      memoryMb: 128,
      permissions: { env: ["B_TOKEN"], sys: ["hostname"] },
    },
  });
  const args = sandboxRunArgs(group, CHANNEL);
  ok(args.includes("--v8-flags=--max-old-space-size=128,--max-semi-space-size=4"));
  // The resident-memory limit grows with the group's workers.
  equal(sandboxMemoryLimitMb(group), 128 + 96 + 24);
  equal(sandboxMemoryLimitMb(group.slice(0, 1)), 64 + 96);
  const read = flag(args, "allow-read")!;
  for (const p of ["/opt/a", "/opt/b", "/data/a"]) ok(read.includes(p), p);
  deepEqual(flag(args, "allow-net"), ["a.example:443", `unix:${CHANNEL}`]);
  deepEqual(flag(args, "allow-env"), ["B_TOKEN", "A6_SANDBOX_SECRET"]);
  deepEqual(flag(args, "allow-sys"), ["hostname"]);
  deepEqual(flag(args, "allow-import"), ["cdn.example"]);
  equal(args.includes("--deny-import"), false);
  // Each worker still gets only its own plugin's grants.
  deepEqual(workerPermissions(group[1]!), {
    read: ["/opt/b"],
    write: false,
    net: false,
    env: ["B_TOKEN"],
    sys: ["hostname"],
    import: false,
    run: false,
    ffi: false,
  });
});

Deno.test("a compiled sandbox revokes every kind none of its plugins was granted", () => {
  deepEqual(revocations(settings({ p: { module: "/opt/p.ts" } })), [
    "run",
    "ffi",
    "write",
    "net",
    "env",
    "sys",
  ]);
  deepEqual(
    revocations(settings({ p: { module: "/opt/p.ts", permissions: { net: ["x:1"] } } })),
    ["run", "ffi", "write", "env", "sys"],
  );
});

Deno.test("a sandbox is granted its paths as configured and as real paths", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "a6-carrier-paths-" }));
  try {
    // A release behind a `current` link, and a grant reached through one.
    await Deno.mkdir(`${dir}/release-1`);
    await Deno.writeTextFile(`${dir}/release-1/p.ts`, "export default {};");
    await Deno.symlink("release-1", `${dir}/current`);
    await Deno.mkdir(`${dir}/data-real`);
    await Deno.symlink("data-real", `${dir}/data`);
    const plugins = settings({
      p: {
        module: `${dir}/current/p.ts`,
        permissions: { read: [`${dir}/data`], write: [`${dir}/data`] },
      },
    });
    const paths = await checkSandboxPaths(plugins);
    const args = sandboxRunArgs(plugins, CHANNEL, paths);
    const read = flag(args, "allow-read")!;
    for (const p of ["current", "release-1", "data", "data-real"]) {
      ok(read.includes(`${dir}/${p}`), p);
    }
    deepEqual(flag(args, "allow-write"), [`${dir}/data`, `${dir}/data-real`, CHANNEL]);
    deepEqual(workerPermissions(plugins[0]!, paths.plugins[0]).read, [
      `${dir}/current`,
      `${dir}/release-1`,
      `${dir}/data`,
      `${dir}/data-real`,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
