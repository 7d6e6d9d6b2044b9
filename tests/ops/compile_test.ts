/**
 * `deno task compile`: the same flags and entry point as `deno task start`, the sandbox
 * bootstrap and bundled plugins included, a fast and clear failure without a base binary, and
 * the CI proof (`--prove`) that runs those flags with `deno run` and lets `deno compile` check
 * them.
 */
import { equal, match, ok } from "node:assert/strict";
import { ROOT, startFlags } from "../support/runner.ts";

async function compileTask(args: string[], env: Record<string, string> = {}) {
  const started = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-net",
      "--allow-run",
      `${ROOT}/scripts/compile.ts`,
      ...args,
    ],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return {
    code: out.code,
    stdout: decode(out.stdout),
    stderr: decode(out.stderr),
    ms: performance.now() - started,
  };
}

Deno.test("--print: deno compile with exactly the start task's flags and entry, plus includes", async () => {
  const flags = await startFlags();
  const printed = await compileTask(["--print"]);
  equal(printed.code, 0, printed.stderr);
  const words = printed.stdout.trim().split(" ");
  equal(words.slice(0, 2).join(" "), "deno compile");
  equal(words.slice(2, 2 + flags.length).join(" "), flags.join(" "), "the start task's flags");
  equal(words.at(-1), "main.ts");
  match(printed.stdout, /--include sandbox\/plugin_worker\.ts/);
  match(printed.stdout, /--include plugins\/say\.ts/);
  ok(!/_test\.ts/.test(printed.stdout), "no test files in the binary");
  match(printed.stdout, /--output dist\/apisix-deno-runner main\.ts$/m);

  const run = await compileTask(["--print-run"]);
  equal(run.stdout.trim(), `deno run ${flags.join(" ")} main.ts run`);
});

Deno.test("without a cached base binary or DENORT_BIN, compile fails fast and says what to do", async () => {
  const empty = await Deno.makeTempDir({ prefix: "a6-denodir-" });
  try {
    const result = await compileTask([], { DENO_DIR: empty });
    equal(result.code, 1);
    ok(result.ms < 15_000, `failed after ${Math.round(result.ms)} ms`);
    match(result.stderr, /deno compile needs its base binary, denort \d+\.\d+\.\d+ for /);
    match(result.stderr, /https:\/\/dl\.deno\.land\/release\/v[\d.]+\/denort-.+\.zip: /);
    match(result.stderr, /DENORT_BIN=\/path\/to\/denort deno task compile/);
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
  const wrong = await compileTask([], { DENORT_BIN: "/nonexistent/denort" });
  equal(wrong.code, 1);
  match(
    wrong.stderr,
    /DENORT_BIN=\/nonexistent\/denort: no such file \(expected a denort binary\)/,
  );
});

Deno.test("--prove: the flags and entry point run under deno run and pass deno compile's checks", async () => {
  const proof = await compileTask(["--prove"]);
  equal(proof.code, 0, proof.stdout + proof.stderr);
  match(proof.stdout, /ok +deno run .* main\.ts version: \d+\.\d+\.\d+/);
  match(proof.stdout, /ok +deno run .* main\.ts run: one call through a sandbox/);
  match(proof.stdout, /ok +deno compile accepts the same flags, entry point and includes/);
});
