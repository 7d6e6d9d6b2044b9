/**
 * The docs stay true: every route in docs/plugins.md names plugins that accept their confs, and
 * the README's "writing a plugin" / "testing your plugin" code runs as shown.
 */
import { deepEqual, equal } from "node:assert/strict";
import { BUNDLED_PLUGINS } from "../../runner/config/config.ts";
import type { Plugin } from "../../mod.ts";
import { testPlugin } from "../../testing/mod.ts";
import { ROOT } from "../support/runner.ts";

const DOC = await Deno.readTextFile(`${ROOT}/docs/plugins.md`);
const EXAMPLE_DOC = await Deno.readTextFile(`${ROOT}/examples/geo_header/README.md`);
const GUIDE = await Deno.readTextFile(`${ROOT}/README.md`);

function blocks(language: string, doc = DOC): string[] {
  const fence = new RegExp("```" + language + "\\n([\\s\\S]*?)```", "g");
  return [...doc.matchAll(fence)].map((m) => m[1]!);
}

async function pluginNamed(name: string): Promise<Plugin<unknown>> {
  const file = BUNDLED_PLUGINS[name];
  const url = file
    ? new URL(`../../plugins/${file}`, import.meta.url)
    : new URL(`../../examples/geo_header/geo_header.ts`, import.meta.url);
  const plugin = (await import(url.href)).default as Plugin<unknown>;
  equal(plugin.name, name);
  return plugin;
}

Deno.test("every route in the docs enables plugins that accept their confs", async () => {
  const enabled: string[] = [];
  for (const block of [...blocks("json"), ...blocks("json", EXAMPLE_DOC)]) {
    const route = JSON.parse(block);
    for (const [phase, settings] of Object.entries(route.plugins ?? {})) {
      if (!phase.startsWith("ext-plugin-")) continue;
      for (
        const { name, value } of (settings as { conf: Array<{ name: string; value: string }> }).conf
      ) {
        const plugin = await pluginNamed(name);
        await testPlugin(plugin, value);
        const filter = phase === "ext-plugin-post-resp" ? "responseFilter" : "requestFilter";
        equal(typeof plugin[filter], "function", `${name} runs in ${phase}`);
        enabled.push(name);
      }
    }
  }
  deepEqual(
    [...new Set(enabled)].sort(),
    [...Object.keys(BUNDLED_PLUGINS), "geo-header"].sort(),
    "each bundled plugin and the example have a route",
  );
});

Deno.test("the guide's plugin and its tests pass as written", async () => {
  const code = blocks("ts", GUIDE);
  const plugin = code.find((c) => c.includes('name: "allow-list"'))!;
  const tests = code.find((c) => c.includes('from "./allow_list.ts"'))!;
  const dir = await Deno.makeTempDir({ prefix: "a6-docs-" });
  try {
    await Deno.writeTextFile(`${dir}/allow_list.ts`, plugin);
    await Deno.writeTextFile(`${dir}/allow_list_test.ts`, tests);
    const { code: status, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["test", "--no-prompt", `--config=${ROOT}/deno.json`, `${dir}/allow_list_test.ts`],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
    }).output();
    const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    equal(status, 0, output);
    equal(/ok \| 3 passed \| 0 failed/.test(output), true, output);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
