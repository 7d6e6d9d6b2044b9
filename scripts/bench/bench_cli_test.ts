/**
 * `deno task bench` end to end, as short as it goes: say on the ceiling, the Go runner and the
 * protocol floor at 1 and 4 connections, one window of 0.3 s each. It needs the load generator
 * (built into `.bench/loadgen` on first use, with g++ and flatc).
 */
import { equal, match } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

const buildable = await exists(join(ROOT, ".bench", "loadgen", "loadgen")) ||
  (await exists("/usr/bin/flatc") && await exists("/usr/bin/g++"));

/** The permission flags of the `bench` task, so the test runs what users run. */
async function benchFlags(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  const words = (config.tasks.bench as string).split(/\s+/);
  return words.slice(words.indexOf("run") + 1, words.indexOf("scripts/bench.ts"));
}

Deno.test({
  name: "a short bench run measures every contender of say and writes the table, JSON and chart",
  ignore: !buildable,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "a6-bench-test-" });
    const logsBefore = await exists(join(ROOT, "logs"));
    try {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          ...await benchFlags(),
          join(ROOT, "scripts", "bench.ts"),
          "--scenarios",
          "say",
          "--runners",
          "ceiling,go,floor",
          "--conns",
          "1,4",
          "--runs",
          "1",
          "--duration",
          "0.3",
          "--warmup",
          "0",
          "--out",
          join(dir, "benchmarks"),
        ],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(out.stdout);
      const stderr = new TextDecoder().decode(out.stderr);
      equal(out.success, true, stderr);
      // Not a terminal here: one progress line for the one scenario, no per-step lines.
      const goThere = await exists(join(ROOT, "..", "shared", "tools", "peers", "go-runner"));
      const steps = goThere ? 6 : 4;
      match(stderr, new RegExp(`bench: say done \\(${steps}/${steps} steps`));
      equal(stderr.includes("\r"), false);

      const json = JSON.parse(await Deno.readTextFile(join(dir, "benchmarks.json")));
      equal(json.rows.length, steps);
      for (const row of json.rows) {
        equal(row.errors, 0);
        equal(row.rps > 0, true);
        equal(row.cpu_us_per_call >= 0, true);
      }
      const markdown = await Deno.readTextFile(join(dir, "benchmarks.md"));
      match(markdown, /Short run \(1 × 0\.3 s per figure\)/);
      match(markdown, /## How to read this/);
      match(markdown, /\| 4 +\| Deno, protocol floor +\| [\d,]+ +\|/);
      match(markdown, /!\[say: calls\/s by connections, per runner\]\(benchmarks\.svg\)/);
      const svg = await Deno.readTextFile(join(dir, "benchmarks.svg"));
      equal([...svg.matchAll(/<polyline /g)].length, goThere ? 3 : 2);
      match(stdout, /\| C\+\+ ceiling \|/);
      if (goThere) {
        match(stdout, /\| Go runner \|/);
        // The Go runner logs to ./logs/runner.log; that must not land in the project.
        equal(await exists(join(ROOT, "logs")), logsBefore);
        match(markdown, /\| 1 +\| Deno, protocol floor +\| [\d,]+ +\| [\d.]+× +\| [\d.]+× +\|/);
      } else {
        match(markdown, /Not measured: the Go runner/);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
