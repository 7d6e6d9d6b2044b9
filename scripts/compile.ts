/**
 * `deno task compile`: builds the single binary APISIX runs, with exactly the flags and entry
 * point of `deno task start` (read from deno.json, so the two cannot drift), `--include` for the
 * sandbox's worker bootstrap and the bundled plugins (which are loaded by URL, not import).
 *
 * `deno compile` needs its base binary (`denort`) from the Deno release server. When it is not
 * cached, DENORT_BIN is unset and the server cannot be reached, this fails at once with a
 * message saying what to do, instead of hanging on the network.
 *
 * `--prove` (CI) shows without the base binary that the flags and entry point work: it runs
 * them with `deno run` (`version`, then a short start that serves one call through a sandbox),
 * and lets `deno compile` check the flags and every `--include` against a stand-in base.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { join, relative } from "node:path";
import { RpcType } from "../protocol/frame.ts";
import { BUNDLED_PLUGINS } from "../runner/config/config.ts";
import { RunnerClient, TokenCache } from "../gateway/runner_client.ts";
import { decodeReqCallAnswer, encodeReqCall } from "../gateway/wire.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const PROBE_TIMEOUT_MS = 3000;

const USAGE = `Usage: deno task compile [options]

Builds the runner binary with the flags and entry point of "deno task start".

Options:
  -o, --output <file>   The binary (default: dist/apisix-deno-runner)
      --target <triple> Another platform, e.g. aarch64-unknown-linux-gnu (default: this one)
      --print           Print the deno compile command and exit
      --print-run       Print the equivalent deno run command (same flags and entry) and exit
      --prove           Prove the flags and entry point without the base binary (for CI)
  -h, --help            Show this help

Environment:
  DENORT_BIN            A denort binary to build on (skips the download)`;

/** What `deno task start` runs: its flags, its entry point and the entry's arguments. */
export interface StartCommand {
  flags: string[];
  entry: string;
  args: string[];
}

/** Splits a task's `deno run ...` command line. */
export function parseRunTask(task: string, name: string): StartCommand {
  const words = task.trim().split(/\s+/);
  const entryAt = words.findIndex((w) => w.endsWith(".ts"));
  if (words[0] !== "deno" || words[1] !== "run" || entryAt < 0) {
    throw new Error(
      `deno.json task "${name}": expected "deno run <flags> <entry>.ts ...", got ${task}`,
    );
  }
  return { flags: words.slice(2, entryAt), entry: words[entryAt]!, args: words.slice(entryAt + 1) };
}

/** The start task, after checking that `dev` uses the same flags and entry. */
export async function startCommand(): Promise<StartCommand> {
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  const start = parseRunTask(config.tasks.start, "start");
  const dev = parseRunTask(config.tasks.dev, "dev");
  if (start.flags.join(" ") !== dev.flags.join(" ") || start.entry !== dev.entry) {
    throw new Error(
      `deno.json: the "dev" task runs ${dev.flags.join(" ")} ${dev.entry}, but "start" runs ` +
        `${start.flags.join(" ")} ${start.entry}: keep them the same`,
    );
  }
  return start;
}

/** What the binary loads by URL: the worker bootstrap and every plugin module (not tests). */
export async function includes(): Promise<{ files: string[]; missing: string[] }> {
  const plugins: string[] = [];
  for await (const entry of Deno.readDir(join(ROOT, "plugins"))) {
    if (entry.isFile && /\.ts$/.test(entry.name) && !/_test\.ts$/.test(entry.name)) {
      plugins.push(`plugins/${entry.name}`);
    }
  }
  plugins.sort();
  const missing = Object.values(BUNDLED_PLUGINS).map((file) => `plugins/${file}`)
    .filter((file) => !plugins.includes(file));
  return { files: ["sandbox/plugin_worker.ts", ...plugins], missing };
}

/** The `deno compile` arguments. */
export async function compileArgs(output: string, target: string | null): Promise<string[]> {
  const start = await startCommand();
  const { files } = await includes();
  return [
    "compile",
    ...start.flags,
    ...files.flatMap((file) => ["--include", file]),
    ...target ? ["--target", target] : [],
    "--output",
    output,
    start.entry,
  ];
}

function shell(words: string[]): string {
  return words.map((w) => /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, "'\\''")}'`)
    .join(" ");
}

/** Where `deno compile` caches base binaries. */
async function denoDir(): Promise<string | null> {
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json"],
      stderr: "null",
    })
      .output();
    return JSON.parse(new TextDecoder().decode(out.stdout)).denoDir ?? null;
  } catch {
    return null;
  }
}

async function cachedBase(name: string): Promise<string | null> {
  const dir = await denoDir();
  if (!dir) return null;
  const candidate = join(dir, "dl", "release", `v${Deno.version.deno}`, name);
  return await Deno.stat(candidate).then(() => candidate, () => null);
}

/** Whether the base binary can be had; a message saying what to do when it cannot. */
export async function baseBinaryProblem(target: string): Promise<string | null> {
  const denort = Deno.env.get("DENORT_BIN");
  if (denort) {
    const info = await Deno.stat(denort).catch(() => null);
    if (!info?.isFile) return `DENORT_BIN=${denort}: no such file (expected a denort binary)`;
    return null;
  }
  const name = `denort-${target}.zip`;
  if (await cachedBase(name)) return null;
  const url = `https://dl.deno.land/release/v${Deno.version.deno}/${name}`;
  let reason: string;
  try {
    const response = await fetch(url, {
      method: "HEAD",
      signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
    });
    await response.body?.cancel();
    if (response.ok) return null;
    reason = `HTTP ${response.status}`;
  } catch (error) {
    const cause = (error as Error).cause;
    reason = (error as Error).name === "TimeoutError"
      ? `no answer within ${PROBE_TIMEOUT_MS / 1000} s`
      : `${(error as Error).message}${cause instanceof Error ? `: ${cause.message}` : ""}`;
  }
  return `deno compile needs its base binary, denort ${Deno.version.deno} for ${target}, and ` +
    `cannot download it:\n  ${url}: ${reason}\n` +
    `Either:\n` +
    `  - build on a machine that can reach dl.deno.land (the zip is then cached in DENO_DIR), or\n` +
    `  - fetch that zip elsewhere, unzip it, and point DENORT_BIN at the denort file:\n` +
    `      DENORT_BIN=/path/to/denort deno task compile\n` +
    `Without a binary, APISIX can start the same program with deno run (deno task compile ` +
    `--print-run shows the command; see docs/binary.md).`;
}

/** `--prove`: the flags and entry point work, shown without the base binary. */
async function prove(): Promise<number> {
  const start = await startCommand();
  const run = (args: string[], env: Record<string, string> = {}) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", ...start.flags, join(ROOT, start.entry), ...args],
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    });
  const expected = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json"))).version;

  // 1. The entry point and flags, as deno run.
  const version = await run(["version"]).output();
  const printed = new TextDecoder().decode(version.stdout).trim();
  if (version.code !== 0 || printed !== expected) {
    console.error(`prove: "version" printed ${JSON.stringify(printed)} (exit ${version.code})`);
    return 1;
  }
  console.log(`ok  deno run ${start.flags.join(" ")} ${start.entry} version: ${printed}`);

  // 2. A short start: one call served through a sandbox process, then SIGTERM.
  const dir = await Deno.makeTempDir({ prefix: "a6-prove-" });
  const socket = join(dir, "runner.sock");
  const child = run(["run"], { APISIX_LISTEN_ADDRESS: `unix:${socket}` }).spawn();
  const output = Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  let failure: string | null = null;
  const client = new RunnerClient(socket);
  try {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const up = await Deno.stat(socket).then(() => true, () => false);
      if (up) break;
      if (Date.now() > deadline) throw new Error("the runner did not listen within 20 s");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const tokens = new TokenCache(client);
    const token = await tokens.get("route#prove#ext-plugin-pre-req#1", [[
      "say",
      '{"body":"proved"}',
    ]]);
    const reply = decodeReqCallAnswer(
      await client.exchange(
        RpcType.HttpReqCall,
        encodeReqCall({
          id: 1,
          srcIp: new Uint8Array([127, 0, 0, 1]),
          method: 0,
          path: "/",
          args: [],
          headers: [],
          token,
        }),
        () => null,
      ),
    );
    const body = reply.action === "stop" ? new TextDecoder().decode(reply.body ?? undefined) : "";
    if (body !== "proved") failure = `the smoke call answered ${JSON.stringify(reply)}`;
  } catch (error) {
    failure = (error as Error).message;
  } finally {
    client.close();
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
  }
  const status = await child.status;
  const [out, err] = await output;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  if (failure || status.code !== 0) {
    console.error(
      `prove: the smoke start failed: ${failure ?? `exit ${status.code}`}\n${out}${err}`,
    );
    return 1;
  }
  console.log(
    `ok  deno run ${start.flags.join(" ")} ${start.entry} run: one call through a sandbox`,
  );

  // 3. deno compile accepts the flags and every --include (on a stand-in base binary: the
  //    result is not a usable runner and is deleted).
  const { missing } = await includes();
  for (const file of missing) console.log(`warn bundled plugin module ${file} does not exist yet`);
  const scratch = await Deno.makeTempDir({ prefix: "a6-prove-compile-" });
  try {
    const compile = await new Deno.Command(Deno.execPath(), {
      args: await compileArgs(join(scratch, "runner"), null),
      cwd: ROOT,
      env: { DENORT_BIN: Deno.execPath(), NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (compile.code !== 0) {
      console.error(
        `prove: deno compile refused the flags or includes:\n${
          new TextDecoder().decode(compile.stderr)
        }`,
      );
      return 1;
    }
  } finally {
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
  console.log("ok  deno compile accepts the same flags, entry point and includes");
  return 0;
}

/** Runs the compile task; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        output: { type: "string", short: "o" },
        target: { type: "string" },
        print: { type: "boolean" },
        "print-run": { type: "boolean" },
        prove: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    console.error(`error: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  try {
    if (values.prove) return await prove();
    const start = await startCommand();
    if (values["print-run"]) {
      console.log(shell(["deno", "run", ...start.flags, start.entry, ...start.args]));
      return 0;
    }
    const output = values.output ?? "dist/apisix-deno-runner";
    const compile = await compileArgs(output, values.target ?? null);
    if (values.print) {
      console.log(shell(["deno", ...compile]));
      return 0;
    }
    const { missing } = await includes();
    for (const file of missing) {
      console.error(`warning: bundled plugin module ${file} does not exist: the binary lacks it`);
    }
    const problem = await baseBinaryProblem(values.target ?? Deno.build.target);
    if (problem) {
      console.error(`error: ${problem}`);
      return 1;
    }
    console.error(`${shell(["deno", ...compile])}`);
    const status = await new Deno.Command(Deno.execPath(), { args: compile, cwd: ROOT }).spawn()
      .status;
    if (status.code === 0) console.error(`built ${relative(Deno.cwd(), join(ROOT, output))}`);
    return status.code;
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
