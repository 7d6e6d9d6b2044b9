/**
 * `deno task new-plugin`: the scaffold is a plugin package that installs, loads in a real
 * sandbox (checked with `check`), with a unit test that passes; names and existing files are
 * guarded.
 */
import { equal, match } from "node:assert/strict";
import { ROOT, startFlags } from "../support/runner.ts";

async function run(command: string[], cwd: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: command,
    cwd,
    stdin: "null",
    env: { NO_COLOR: "1" },
  })
    .output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { code: out.code, text };
}

const newPlugin = (args: string[], cwd: string) =>
  run([
    "run",
    "--no-prompt",
    "--allow-read",
    "--allow-write",
    `${ROOT}/scripts/new_plugin.ts`,
    ...args,
  ], cwd);

const hasTestKit = await Deno.stat(`${ROOT}/testing/mod.ts`).then(() => true, () => false);

/** Runs the runner's `install` for `config` with `deno task install`'s flags. */
async function install(config: string, cwd: string) {
  const tasks = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`)).tasks;
  const words = (tasks.install as string).split(/\s+/);
  return await run([
    ...words.slice(words.indexOf("run"), words.indexOf("main.ts")),
    `${ROOT}/main.ts`,
    "install",
    "--config",
    config,
  ], cwd);
}

Deno.test("new-plugin scaffolds a package that installs, loads and takes its conf", async () => {
  const dir = await Deno.makeTempDir({ prefix: "a6-new-" });
  try {
    const created = await newPlugin(["my-auth", "--dir", "mine"], dir);
    equal(created.code, 0, created.text);
    match(created.text, /created the plugin package mine\/my-auth\/ \(deno\.json, mod\.ts/);
    match(created.text, /"my-auth": \{ "module": "\.\/mine\/my-auth\/mod\.ts" \}/);
    match(created.text, /deno task install --config runner\.jsonc/);
    match(created.text, /deno test --config mine\/my-auth\/\.apisix-runner\/deno\.json/);
    const source = await Deno.readTextFile(`${dir}/mine/my-auth/mod.ts`);
    match(source, /name: "my-auth"/);
    match(source, /interface MyAuthConf/);
    match(await Deno.readTextFile(`${dir}/mine/my-auth/README.md`), /# my-auth/);

    await Deno.writeTextFile(
      `${dir}/runner.jsonc`,
      '{ "bundled": false, "plugins": { "my-auth": { "module": "./mine/my-auth/mod.ts" } } }',
    );
    const checkArgs = [
      ...["run", ...(await startFlags()).slice(0)],
      `${ROOT}/main.ts`,
      "check",
      "-c",
      `${dir}/runner.jsonc`,
      "--conf",
      'my-auth={"value":"on"}',
      "--conf",
      'my-auth={"header":"bad header"}',
    ];
    const before = await run(checkArgs, dir);
    equal(before.code, 1, before.text);
    match(before.text, /my-auth: the plugin package .* is not installed: run `deno task install/);

    const installed = await install(`${dir}/runner.jsonc`, dir);
    equal(installed.code, 0, installed.text);
    const check = await run(checkArgs, dir);
    equal(check.code, 1, check.text);
    match(check.text, /ok +plugin +my-auth: loaded in process sandbox/);
    match(check.text, /ok +conf +my-auth \{"value":"on"\}: accepted/);
    match(
      check.text,
      /error +conf +my-auth .*rejected by parseConf: header: expected a header name/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "the scaffolded unit test passes (with the test kit) after install",
  ignore: !hasTestKit,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "a6-new-" });
    try {
      equal((await newPlugin(["hello-world", "--dir", dir], dir)).code, 0);
      const pkg = `${dir}/hello-world`;
      await Deno.writeTextFile(
        `${dir}/runner.json`,
        JSON.stringify({ plugins: { "hello-world": { module: `${pkg}/mod.ts` } } }),
      );
      const installed = await install(`${dir}/runner.json`, dir);
      equal(installed.code, 0, installed.text);
      const test = await run(
        ["test", "--no-prompt", `--config=${pkg}/.apisix-runner/deno.json`, `${pkg}/mod_test.ts`],
        dir,
      );
      equal(test.code, 0, test.text);
      match(test.text, /2 passed/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("new-plugin guards names and existing files", async () => {
  const dir = await Deno.makeTempDir({ prefix: "a6-new-" });
  try {
    const bad = await newPlugin(["MyAuth"], dir);
    equal(bad.code, 2);
    match(bad.text, /plugin name "MyAuth": expected lower case letters/);
    const none = await newPlugin([], dir);
    equal(none.code, 2);
    match(none.text, /expected one plugin name, got 0/);
    equal((await newPlugin(["twice"], dir)).code, 0);
    const again = await newPlugin(["twice"], dir);
    equal(again.code, 1);
    match(again.text, /plugins\/twice\/deno\.json exists; pass --force to overwrite it/);
    equal((await newPlugin(["twice", "--force"], dir)).code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
