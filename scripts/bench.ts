/**
 * `deno task bench`: measures the runner the way APISIX loads it and compares it with the C++
 * "ceiling" server (the least work a runner can do) in the same run.
 *
 * For each isolation (process, inline) and scenario (say, request-rewrite with a `$variable`,
 * content-digest over a 1 KiB body, response-rewrite in the response phase, a chain of three
 * plugins) and the protocol-only floor, at 1, 16 and 64 connections, it reports requests per
 * second, p50/p90/p99 latency, CPU per request of the runner and all its sandboxes together,
 * and resident memory; medians of several runs. Results go to `docs/benchmarks.json` and
 * `docs/benchmarks.md`.
 *
 * The load comes from `../shared/tools/loadgen` (built into `.bench/` with g++, flatc and the
 * FlatBuffers headers: Debian's `flatbuffers-compiler` and `libflatbuffers-dev`), or from
 * `--loadgen DIR` holding a built `loadgen` and `ceiling`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

interface Scenario {
  name: string;
  description: string;
  /** loadgen --conf entries. */
  confs: string[];
  mode: "req" | "resp";
  bodySize: number;
  /** Runs without plugins (the protocol-only floor). */
  floor?: boolean;
}

const SCENARIOS: Scenario[] = [
  {
    name: "say",
    description: "say: answers with a Stop",
    confs: ['say={"body":"hello"}'],
    mode: "req",
    bodySize: 0,
  },
  {
    name: "rewrite-var",
    description: "request-rewrite setting a header from $remote_addr (one ExtraInfo per call)",
    confs: ['request-rewrite={"headers":{"set":{"x-real-ip":"$remote_addr"}}}'],
    mode: "req",
    bodySize: 0,
  },
  {
    name: "digest-1k",
    description: "content-digest over a 1 KiB request body (one ExtraInfo per call)",
    confs: ["content-digest={}"],
    mode: "req",
    bodySize: 1024,
  },
  {
    name: "resp-rewrite",
    description: "response-rewrite adding a header in the response phase",
    confs: ['response-rewrite={"headers":{"x-served-by":"deno"}}'],
    mode: "resp",
    bodySize: 0,
  },
  {
    name: "chain3",
    description: "request-rewrite → limit-req → say",
    confs: [
      'request-rewrite={"headers":{"set":{"x-a":"1"}}}',
      'limit-req={"rate":100000000,"burst":100000000}',
      'say={"body":"hello"}',
    ],
    mode: "req",
    bodySize: 0,
  },
  {
    name: "floor",
    description: "protocol-only floor: no plugin, the runner answers itself",
    confs: ['say={"body":"hello"}'],
    mode: "req",
    bodySize: 0,
    floor: true,
  },
];

const { values: args } = parseArgs({
  args: Deno.args,
  strict: true,
  options: {
    scenarios: { type: "string", default: SCENARIOS.map((s) => s.name).join(",") },
    isolations: { type: "string", default: "process,inline" },
    conns: { type: "string", default: "1,16,64" },
    duration: { type: "string", default: "5" },
    warmup: { type: "string", default: "2" },
    runs: { type: "string", default: "3" },
    loadgen: { type: "string" },
    out: { type: "string", default: join(ROOT, "docs", "benchmarks") },
    help: { type: "boolean", short: "h" },
  },
});

if (args.help) {
  console.log(`Usage: deno task bench [--scenarios ${SCENARIOS.map((s) => s.name).join(",")}]
  [--isolations process,inline] [--conns 1,16,64] [--duration 5] [--warmup 2] [--runs 3]
  [--loadgen DIR] [--out docs/benchmarks]`);
  Deno.exit(0);
}

const duration = Number(args.duration);
const warmup = Number(args.warmup);
const runs = Number(args.runs);
const connCounts = args.conns.split(",").map(Number);
const isolations = args.isolations.split(",") as Array<"process" | "inline">;
const scenarios = args.scenarios.split(",").map((name) => {
  const s = SCENARIOS.find((x) => x.name === name);
  if (!s) throw new Error(`unknown scenario ${name}`);
  return s;
});

async function run(cmd: string, cmdArgs: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args: cmdArgs, stderr: "piped", stdout: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`${cmd} ${cmdArgs.join(" ")} failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** A directory with built `loadgen` and `ceiling` binaries. */
async function loadgenDir(): Promise<string> {
  if (args.loadgen) return args.loadgen;
  const dir = join(ROOT, ".bench", "loadgen");
  try {
    await Deno.stat(join(dir, "loadgen"));
    return dir;
  } catch { /* build it */ }
  const source = join(ROOT, "..", "shared", "tools", "loadgen");
  await Deno.mkdir(dir, { recursive: true });
  for await (const entry of Deno.readDir(source)) {
    if (entry.isFile) await Deno.copyFile(join(source, entry.name), join(dir, entry.name));
  }
  console.error(`building the load generator in ${dir}`);
  await run("make", ["-C", dir]);
  return dir;
}

// Deno 2.9 asks for --allow-all to read another process's /proc files, so `cat` reads them.
async function readProc(pid: number, file: string): Promise<string> {
  const out = await new Deno.Command("cat", {
    args: [`/proc/${pid}/${file}`],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout);
}

async function cpuTicks(pid: number): Promise<number> {
  const stat = await readProc(pid, "stat");
  if (!stat) return 0;
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

/** Child processes of `pid`. */
async function childrenOf(pid: number): Promise<number[]> {
  const out = await new Deno.Command("sh", {
    args: ["-c", `cat /proc/${pid}/task/*/children`],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).split(/\s+/).filter(Boolean).map(Number);
}

/**
 * Resident memory, and the part of it that is the process's own (heap, stacks, buffers): without
 * the pages of the `deno` executable it shares with every other Deno process (about 45 MB).
 */
async function memoryMb(pid: number): Promise<{ rss: number; private: number }> {
  const status = await readProc(pid, "status");
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: kb("VmRSS") / 1024, private: kb("RssAnon") / 1024 };
}

const TICKS_PER_SECOND = 100;

interface LoadResult {
  rps: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  errors: number;
  requests: number;
}

async function load(
  dir: string,
  socket: string,
  scenario: Scenario,
  conns: number,
  seconds: number,
  warm: number,
): Promise<LoadResult> {
  const loadArgs = [
    "--socket",
    socket,
    "--conns",
    String(conns),
    "--duration",
    String(seconds),
    "--warmup",
    String(warm),
    "--mode",
    scenario.mode,
    "--quiet",
  ];
  for (const conf of scenario.confs) loadArgs.push("--conf", conf);
  if (scenario.bodySize) loadArgs.push("--body-size", String(scenario.bodySize));
  const out = await new Deno.Command(join(dir, "loadgen"), { args: loadArgs, stdout: "piped" })
    .output();
  const line = new TextDecoder().decode(out.stdout).trim().split("\n").pop()!;
  return JSON.parse(line) as LoadResult;
}

async function waitForSocket(path: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    try {
      (await Deno.connect({ transport: "unix", path })).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  throw new Error(`nothing listens on ${path}`);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

interface Row {
  scenario: string;
  isolation: string;
  conns: number;
  rps: number;
  ratio: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  cpu_us_per_req: number;
  runner_cpu_us_per_req: number;
  errors: number;
  runner_rss_mb: number;
  runner_private_mb: number;
  sandboxes_rss_mb: number;
}

async function startFlags(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  const words = (config.tasks.start as string).split(/\s+/);
  return words.slice(words.indexOf("run") + 1, words.indexOf("main.ts"));
}

async function measureRunner(
  dir: string,
  scenario: Scenario,
  isolation: "process" | "inline",
  ceilings: Map<number, number>,
): Promise<Row[]> {
  const tmp = await Deno.makeTempDir({ prefix: "a6-bench-" });
  const socket = join(tmp, "runner.sock");
  const plugins: Record<string, unknown> = {};
  for (const conf of scenario.confs) {
    const name = conf.slice(0, conf.indexOf("="));
    plugins[name] = { isolation };
  }
  await Deno.writeTextFile(join(tmp, "runner.json"), JSON.stringify({ plugins }));
  const env: Record<string, string> = { APISIX_LISTEN_ADDRESS: `unix:${socket}` };
  if (scenario.floor) env.A6_BENCH_FLOOR = "1";
  const runner = new Deno.Command(Deno.execPath(), {
    args: [
      ...await startFlags(),
      join(ROOT, "main.ts"),
      "run",
      "--config",
      join(tmp, "runner.json"),
    ],
    env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr: string[] = [];
  (async () => {
    for await (const chunk of runner.stderr.pipeThrough(new TextDecoderStream())) {
      stderr.push(chunk);
    }
  })();
  const rows: Row[] = [];
  try {
    await waitForSocket(socket);
    for (const conns of connCounts) {
      const samples: Row[] = [];
      for (let i = 0; i < runs; i++) {
        await load(dir, socket, scenario, conns, warmup, 0);
        const pids = [runner.pid, ...await childrenOf(runner.pid)];
        const before = await Promise.all(pids.map(cpuTicks));
        const result = await load(dir, socket, scenario, conns, duration, 0);
        const after = await Promise.all(pids.map(cpuTicks));
        const spent = after.map((t, j) => t - before[j]!);
        const total = spent.reduce((a, b) => a + b, 0);
        const runnerMemory = await memoryMb(runner.pid);
        const perReq = (ticks: number) =>
          result.requests ? (ticks / TICKS_PER_SECOND) * 1e6 / result.requests : 0;
        samples.push({
          scenario: scenario.name,
          isolation: scenario.floor ? "none" : isolation,
          conns,
          rps: result.rps,
          ratio: result.rps / ceilings.get(conns)!,
          p50_us: result.p50_us,
          p90_us: result.p90_us,
          p99_us: result.p99_us,
          cpu_us_per_req: perReq(total),
          runner_cpu_us_per_req: perReq(spent[0]!),
          errors: result.errors,
          runner_rss_mb: runnerMemory.rss,
          runner_private_mb: runnerMemory.private,
          sandboxes_rss_mb: (await Promise.all(pids.slice(1).map(memoryMb))).reduce(
            (sum, memory) => sum + memory.rss,
            0,
          ),
        });
      }
      const row: Row = { ...samples[0]! };
      for (const key of Object.keys(row) as Array<keyof Row>) {
        if (typeof row[key] === "number" && key !== "conns") {
          (row[key] as number) = median(samples.map((s) => s[key] as number));
        }
      }
      row.errors = samples.reduce((sum, s) => sum + s.errors, 0);
      rows.push(row);
      console.error(
        `${row.scenario.padEnd(13)} ${row.isolation.padEnd(8)} ${
          String(conns).padStart(3)
        } conns ` +
          `${Math.round(row.rps).toString().padStart(7)} req/s  ${row.ratio.toFixed(3)}x  ` +
          `p99 ${Math.round(row.p99_us)} us  cpu ${row.cpu_us_per_req.toFixed(1)} us/req  ` +
          `errors ${row.errors}`,
      );
    }
  } finally {
    runner.kill("SIGTERM");
    await runner.status;
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
  if (rows.some((r) => r.errors > 0)) console.error(stderr.join("").slice(-2000));
  return rows;
}

async function measureCeiling(dir: string): Promise<Map<number, number>> {
  const tmp = await Deno.makeTempDir({ prefix: "a6-ceiling-" });
  const socket = join(tmp, "ceiling.sock");
  const ceiling = new Deno.Command(join(dir, "ceiling"), {
    args: ["--socket", socket],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const result = new Map<number, number>();
  try {
    await waitForSocket(socket);
    for (const conns of connCounts) {
      const samples: number[] = [];
      for (let i = 0; i < runs; i++) {
        await load(dir, socket, SCENARIOS[0]!, conns, 1, 0);
        samples.push((await load(dir, socket, SCENARIOS[0]!, conns, duration, 0)).rps);
      }
      result.set(conns, median(samples));
      console.error(
        `ceiling ${String(conns).padStart(3)} conns ${Math.round(median(samples))} req/s`,
      );
    }
  } finally {
    ceiling.kill("SIGTERM");
    await ceiling.status;
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
  return result;
}

function table(rows: Row[], ceilings: Map<number, number>): string {
  const lines = [
    "| scenario | isolation | conns | req/s | × ceiling | p50 µs | p90 µs | p99 µs | CPU µs/req (all) | runner CPU µs/req | RSS runner MB | private runner MB | RSS sandboxes MB | errors |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const conns of connCounts) {
    lines.push(
      `| C++ ceiling | – | ${conns} | ${
        Math.round(ceilings.get(conns)!)
      } | 1.000 | | | | | | | | | |`,
    );
  }
  for (const r of rows) {
    lines.push(
      `| ${r.scenario} | ${r.isolation} | ${r.conns} | ${Math.round(r.rps)} | ${
        r.ratio.toFixed(3)
      } | ` +
        `${r.p50_us.toFixed(0)} | ${r.p90_us.toFixed(0)} | ${r.p99_us.toFixed(0)} | ` +
        `${r.cpu_us_per_req.toFixed(1)} | ${r.runner_cpu_us_per_req.toFixed(1)} | ` +
        `${r.runner_rss_mb.toFixed(0)} | ${r.runner_private_mb.toFixed(0)} | ` +
        `${r.sandboxes_rss_mb.toFixed(0)} | ${r.errors} |`,
    );
  }
  return lines.join("\n");
}

async function loadAverage(): Promise<string> {
  // Through cat, as readProc does: Deno lets only --allow-all read /proc.
  const out = await new Deno.Command("cat", { args: ["/proc/loadavg"], stdout: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  return text.split(" ").slice(0, 3).join(" ");
}

const dir = await loadgenDir();
const loadBefore = await loadAverage();
const ceilings = await measureCeiling(dir);
const rows: Row[] = [];
for (const scenario of scenarios) {
  for (const isolation of scenario.floor ? ["process" as const] : isolations) {
    rows.push(...await measureRunner(dir, scenario, isolation, ceilings));
  }
}
const meta = {
  date: new Date().toISOString(),
  deno: Deno.version.deno,
  cpus: navigator.hardwareConcurrency,
  duration_s: duration,
  runs,
  statistic: "median",
  // Other load on the machine skews every ratio: the 1, 5 and 15 minute load averages.
  loadavg_before: loadBefore,
  loadavg_after: await loadAverage(),
};
await Deno.mkdir(join(args.out, ".."), { recursive: true });
await Deno.writeTextFile(
  `${args.out}.json`,
  JSON.stringify({ meta, ceiling: Object.fromEntries(ceilings), rows }, null, 2) + "\n",
);
const markdown =
  `# Benchmarks\n\nMeasured ${meta.date} with Deno ${meta.deno} on ${meta.cpus} CPUs; ` +
  `medians of ${runs} runs of ${duration} s after a ${warmup} s warm-up, driven by ` +
  "`../shared/tools/loadgen`. The ratio is against the C++ ceiling server measured in the same " +
  "run. CPU per request sums the runner and every sandbox process. RSS counts the pages of the " +
  "`deno` executable the process has touched (shared with every Deno process, about 45 MB); " +
  "the private column is the runner's own memory (`RssAnon`). Load average before and after: " +
  `${meta.loadavg_before} / ${meta.loadavg_after} (the benchmark itself adds about 1.5).\n\n` +
  scenarios.map((s) => `- **${s.name}**: ${s.description}`).join("\n") + "\n\n" +
  table(rows, ceilings) + "\n";
await Deno.writeTextFile(`${args.out}.md`, markdown);
// Formatted as `deno task check` wants it, so a new run can be committed as it is.
await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", `${args.out}.md`] }).output();
console.log(table(rows, ceilings));
