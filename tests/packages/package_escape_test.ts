/**
 * The sandbox escape suite (tests/sandbox/escape_test.ts) run again with every attacking
 * plugin inside an installed plugin package that has an npm dependency: a package's sandbox
 * starts with the package's own configuration and reads the package (its node_modules
 * included), and every attack is still denied.
 */
import { equal, match } from "node:assert/strict";
import { ROOT } from "../support/runner.ts";
import { runnerCommand, writeConfig } from "./support.ts";

Deno.test({
  name: "escape suite against plugins inside an installed package",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "a6-pkg-escape-" });
    try {
      // Two levels down, as in the repository, so the suite's relative paths keep their depth.
      const pkg = `${dir}/tests/sandbox/plugins`;
      await Deno.mkdir(pkg, { recursive: true });
      for await (const entry of Deno.readDir(`${ROOT}/tests/sandbox/plugins`)) {
        if (entry.isFile) {
          await Deno.copyFile(
            `${ROOT}/tests/sandbox/plugins/${entry.name}`,
            `${pkg}/${entry.name}`,
          );
        }
      }
      await Deno.writeTextFile(
        `${pkg}/deno.json`,
        JSON.stringify({ imports: { jose: "npm:jose@5.9.6" } }),
      );
      const env = { DENO_DIR: await Deno.makeTempDir({ prefix: "a6-deno-dir-" }) };
      const config = await writeConfig(dir, { read_file: { module: `${pkg}/read_file.ts` } });
      const installed = await runnerCommand("install", ["install", "--config", config], env);
      equal(installed.code, 0, installed.output);

      const suite = await new Deno.Command(Deno.execPath(), {
        args: ["test", "--no-prompt", "-A", `${ROOT}/tests/sandbox/escape_test.ts`],
        env: { ...env, NO_COLOR: "1", A6_SUITE_PLUGINS: pkg },
        cwd: ROOT,
      }).output();
      const output = new TextDecoder().decode(suite.stdout) +
        new TextDecoder().decode(suite.stderr);
      equal(suite.code, 0, output.slice(-6000));
      match(output, /\d+ passed .* 0 failed/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
