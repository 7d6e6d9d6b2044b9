/**
 * What each hop costs, against the Go runner in the same run: `say` through the Go runner, the
 * C++ ceiling server, our protocol floor (`A6_BENCH_FLOOR=1`), our `isolation: "inline"` and our
 * sandboxed default, interleaved (every target at one connection count, then the next count,
 * `--rounds` times), reporting medians of calls/s, latency, the ratio to Go measured in the same
 * round, and CPU per call of every process of the target; then the idle CPU of a runner with
 * three warmed-up sandboxes over `--idle` seconds.
 *
 * Needs the loadgen and ceiling built (see `../shared/tools/loadgen/README.md`) in `--loadgen`.
 *
 * Run: `deno run -A benchmarks/hops_bench.ts --loadgen DIR [--rounds 3] [--seconds 3]
 * [--conns 1,4,16,64] [--targets go,ceiling,floor,inline,sandboxed] [--idle 20]
 * [--base DIR]`. With `--base`, a checkout of another version of the runner, the targets
 * `base-floor`, `base-inline` and `base-sandboxed` run that version (an A/B in one run).
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    loadgen: { type: "string", default: join(Deno.cwd(), ".bench", "loadgen") },
    go: {
      type: "string",
      default: new URL("../../shared/tools/peers/go-runner", import.meta.url).pathname,
    },
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "3" },
    conns: { type: "string", default: "1,4,16,64" },
    targets: { type: "string", default: "go,ceiling,floor,inline,sandboxed" },
    idle: { type: "string", default: "20" },
    base: { type: "string" },
  },
});
const ROOT = new URL("../", import.meta.url).pathname;
const CONF = 'say={"body":"hello"}';
const TICKS = 100;

interface Target {
  name: string;
  pid: number;
  socket: string;
  stop(): Promise<void>;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

function ticksOf(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

function tree(pid: number): number[] {
  const pids = [pid];
  for (let i = 0; i < pids.length; i++) {
    let tasks: string[] = [];
    try {
      tasks = [...Deno.readDirSync(`/proc/${pids[i]}/task`)].map((e) => e.name);
    } catch { /* gone */ }
    for (const task of tasks) {
      try {
        const children = Deno.readTextFileSync(`/proc/${pids[i]}/task/${task}/children`);
        pids.push(...children.split(/\s+/).filter(Boolean).map(Number));
      } catch { /* gone */ }
    }
  }
  return pids;
}

const treeTicks = (pid: number) => tree(pid).reduce((sum, p) => sum + ticksOf(p), 0);

async function waitForSocket(path: string): Promise<void> {
  for (let i = 0; i < 800; i++) {
    try {
      (await Deno.connect({ transport: "unix", path })).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  throw new Error(`nothing listens on ${path}`);
}

// The Go runner writes logs/runner.log into its working directory: give it a scratch one.
function spawn(
  name: string,
  cmd: string,
  args: string[],
  env: Record<string, string>,
  socket: string,
) {
  const cwd = Deno.makeTempDirSync({ prefix: "a6-hops-cwd-" });
  const child = new Deno.Command(cmd, {
    args,
    env,
    cwd,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  return {
    name,
    pid: child.pid,
    socket,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
    },
  };
}

async function startFlags(root: string): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(join(root, "deno.json")));
  const words = (config.tasks.start as string).split(/\s+/);
  return words.slice(words.indexOf("run") + 1, words.indexOf("main.ts"));
}

async function startRunner(
  name: string,
  plugins: Record<string, unknown>,
  floor = false,
  root = ROOT,
): Promise<Target> {
  const tmp = await Deno.makeTempDir({ prefix: `a6-hops-${name}-` });
  const socket = join(tmp, "runner.sock");
  await Deno.writeTextFile(join(tmp, "runner.json"), JSON.stringify({ plugins }));
  const env: Record<string, string> = { APISIX_LISTEN_ADDRESS: `unix:${socket}` };
  if (floor) env.A6_BENCH_FLOOR = "1";
  const args = [
    ...await startFlags(root),
    join(root, "main.ts"),
    "run",
    "--config",
    join(tmp, "runner.json"),
  ];
  const target = spawn(name, Deno.execPath(), args, env, socket);
  await waitForSocket(socket);
  return target;
}

async function start(name: string): Promise<Target> {
  if (name.startsWith("base-")) {
    if (!values.base) throw new Error(`${name} needs --base`);
    const isolation = name.slice(5);
    const plugins = { say: isolation === "inline" ? { isolation } : {} };
    const target = await startRunner(name, plugins, isolation === "floor", values.base);
    return target;
  }
  const tmp = await Deno.makeTempDir({ prefix: `a6-hops-${name}-` });
  const socket = join(tmp, "runner.sock");
  switch (name) {
    case "go": {
      const t = spawn(name, values.go!, ["run", "-m", "prod"], {
        APISIX_LISTEN_ADDRESS: `unix:${socket}`,
      }, socket);
      await waitForSocket(socket);
      return t;
    }
    case "ceiling": {
      const t = spawn(name, join(values.loadgen!, "ceiling"), ["--socket", socket], {}, socket);
      await waitForSocket(socket);
      return t;
    }
    case "floor":
      return await startRunner(name, { say: {} }, true);
    case "inline":
      return await startRunner(name, { say: { isolation: "inline" } });
    default:
      return await startRunner(name, { say: {} });
  }
}

interface Sample {
  rps: number;
  p50_us: number;
  p99_us: number;
  errors: number;
  cpu_us: number;
}

async function load(target: Target, conns: number, seconds: number): Promise<Sample> {
  const before = treeTicks(target.pid);
  const out = await new Deno.Command(join(values.loadgen!, "loadgen"), {
    args: [
      "--socket",
      target.socket,
      "--conns",
      String(conns),
      "--duration",
      String(seconds),
      "--warmup",
      "1",
      "--conf",
      CONF,
      "--quiet",
    ],
    stdout: "piped",
  }).output();
  const after = treeTicks(target.pid);
  const result = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
  // The warm-up second is in the CPU window too: spread over warm-up and window alike.
  const calls = result.rps * (seconds + 1);
  return {
    rps: result.rps,
    p50_us: result.p50_us,
    p99_us: result.p99_us,
    errors: result.errors,
    cpu_us: calls ? ((after - before) / TICKS) * 1e6 / calls : 0,
  };
}

async function idleCpu(seconds: number): Promise<number> {
  const runner = await startRunner("idle", {
    say: {},
    "request-rewrite": {},
    "response-rewrite": {},
  });
  try {
    // One call through each sandbox, so that all three are up.
    for (const conf of ['say={"body":"x"}', "request-rewrite={}", "response-rewrite={}"]) {
      await new Deno.Command(join(values.loadgen!, "loadgen"), {
        args: [
          "--socket",
          runner.socket,
          "--requests",
          "10",
          "--warmup",
          "0",
          "--conf",
          conf,
          "--quiet",
        ],
        stdout: "null",
        stderr: "null",
      }).output();
    }
    await new Promise((r) => setTimeout(r, 2000));
    const before = treeTicks(runner.pid);
    const processes = tree(runner.pid).length;
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const after = treeTicks(runner.pid);
    const share = (after - before) / TICKS / seconds * 100;
    console.log(`idle: ${processes} processes, ${share.toFixed(2)} % of a core over ${seconds} s`);
    return share;
  } finally {
    await runner.stop();
  }
}

const names = values.targets!.split(",").filter(Boolean);
const connCounts = values.conns!.split(",").map(Number);
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const results = new Map<string, Sample[]>();
const ratios = new Map<string, number[]>();
const targets: Target[] = [];
try {
  for (const name of names) targets.push(await start(name));
  for (let round = 0; round < rounds; round++) {
    for (const conns of connCounts) {
      let go = 0;
      for (const target of targets) {
        const sample = await load(target, conns, seconds);
        if (target.name === "go") go = sample.rps;
        const key = `${target.name}@${conns}`;
        results.set(key, [...results.get(key) ?? [], sample]);
        if (go) ratios.set(key, [...ratios.get(key) ?? [], sample.rps / go]);
      }
    }
  }
} finally {
  for (const target of targets) await target.stop();
}
const rows = [];
for (const conns of connCounts) {
  for (const name of names) {
    const samples = results.get(`${name}@${conns}`) ?? [];
    if (!samples.length) continue;
    const row = {
      target: name,
      conns,
      rps: Math.round(median(samples.map((s) => s.rps))),
      ratio_to_go: +(median(ratios.get(`${name}@${conns}`) ?? [NaN])).toFixed(3),
      p50_us: Math.round(median(samples.map((s) => s.p50_us))),
      p99_us: Math.round(median(samples.map((s) => s.p99_us))),
      cpu_us_per_call: +median(samples.map((s) => s.cpu_us)).toFixed(1),
      errors: samples.reduce((sum, s) => sum + s.errors, 0),
    };
    rows.push(row);
    console.log(
      `${name.padEnd(10)} ${String(conns).padStart(3)} conns ${String(row.rps).padStart(7)}/s ` +
        `ratio ${row.ratio_to_go.toFixed(2)} p50 ${row.p50_us} µs p99 ${row.p99_us} µs ` +
        `cpu ${row.cpu_us_per_call} µs/call errors ${row.errors}`,
    );
  }
}
const idle = Number(values.idle) > 0 ? await idleCpu(Number(values.idle)) : null;
console.log(JSON.stringify({ rows, idle_percent_of_core: idle }));
