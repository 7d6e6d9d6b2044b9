/**
 * What sandboxing costs, measured on the real runner process (`deno task start`'s flags):
 *
 * 1. restart to serving: a sandbox is SIGKILLed (as a crash would end it) and the time until its
 *    plugin answers a call again is taken, once for each of `--restarts` (≤ 10) sandboxes; the
 *    median is reported;
 * 2. memory: the runner's resident memory, and each sandbox's, with 10 sandboxed plugins warmed
 *    up;
 * 3. latency: one trivial plugin run sandboxed (own process) and inline (a worker in the
 *    runner), against a route with no plugin, in the same run. With the shared C++ load
 *    generator that `deno task bench` builds into `.bench/loadgen/` (1 and 16 connections, median
 *    of `--runs` windows);
 *    without it, with this script's own client (1 connection, sequential calls).
 *
 * Run: `deno run -A benchmarks/sandbox_bench.ts [--restarts 10] [--runs 3] [--seconds 3]`.
 * It prints human lines and one JSON line at the end.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ApisixConn } from "../tests/support/apisix.ts";
import { type RunningRunner, startRunner } from "../tests/support/runner.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    restarts: { type: "string", default: "10" },
    runs: { type: "string", default: "3" },
    seconds: { type: "string", default: "3" },
    loadgen: {
      type: "string",
      default: new URL("../.bench/loadgen/loadgen", import.meta.url).pathname,
    },
  },
});
const RESTARTS = Number(values.restarts);
const RUNS = Number(values.runs);
const SECONDS = Number(values.seconds);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

function residentMb(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

function sandboxPids(runner: RunningRunner): Map<string, number> {
  const pids = new Map<string, number>();
  for (const line of runner.lines) {
    const found = /sandbox plugin:(\S+) ready in \d+ ms \(pid (\d+)\)/.exec(line);
    if (found) pids.set(found[1]!, Number(found[2]));
  }
  return pids;
}

/** Writes `count` trivial plugin modules (`bench0` …) and returns their directory. */
async function writePlugins(names: string[]): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "a6-bench-plugins-" });
  for (const name of names) {
    await Deno.writeTextFile(
      `${dir}/${name}.ts`,
      `import { definePlugin } from "@apisix/deno-plugin-runner";\n` +
        `export default definePlugin({ name: ${JSON.stringify(name)}, ` +
        `requestFilter(_conf, req, res) { if (req.headers.has("x-answer")) res.body = "alive"; } });\n`,
    );
  }
  return dir;
}

async function until<T>(fn: () => Promise<T | null>, timeoutMs: number): Promise<T> {
  const started = performance.now();
  for (;;) {
    const value = await fn();
    if (value !== null) return value;
    if (performance.now() - started > timeoutMs) throw new Error("timed out");
  }
}

// ---- 1 and 2: restart to serving, and memory with 10 sandboxed plugins ---------------------

const names = Array.from({ length: 10 }, (_, i) => `bench${i}`);
const pluginDir = await writePlugins([...names, "inline0"]);
const plugins: Record<string, unknown> = {};
for (const name of names) plugins[name] = { module: `${pluginDir}/${name}.ts` };
plugins.inline0 = { module: `${pluginDir}/inline0.ts`, isolation: "inline" };

const runner = await startRunner({ config: { bundled: false, plugins } });
const result: Record<string, unknown> = {};
try {
  const conn = await ApisixConn.connect(runner.socket);
  const idleRunnerMb = residentMb(runner.process.pid);
  const tokens = new Map<string, number>();
  for (const name of names) {
    tokens.set(name, await conn.token([[name, "{}"]]));
    for (let i = 0; i < 50; i++) {
      await conn.reqCall({ token: tokens.get(name)!, headers: [["x-answer", "1"]] });
    }
  }
  const pids = sandboxPids(runner);
  const sandboxMb = names.map((name) => residentMb(pids.get(name)!));
  const runnerMb = residentMb(runner.process.pid);
  console.log(
    `# memory: runner ${runnerMb.toFixed(1)} MiB with 10 sandboxed plugins ` +
      `(${idleRunnerMb.toFixed(1)} MiB before their sandboxes started); ` +
      `each sandbox median ${median(sandboxMb).toFixed(1)} MiB, all 10: ` +
      `${sandboxMb.reduce((a, b) => a + b, 0).toFixed(0)} MiB`,
  );
  Object.assign(result, {
    runner_rss_mib_10_sandboxes: Number(runnerMb.toFixed(1)),
    runner_rss_mib_before_sandboxes: Number(idleRunnerMb.toFixed(1)),
    sandbox_rss_mib_median: Number(median(sandboxMb).toFixed(1)),
    sandboxes_rss_mib_total: Number(sandboxMb.reduce((a, b) => a + b, 0).toFixed(0)),
  });

  // One kill per sandbox: a sandbox that ends 5 times within 60 s is marked unavailable, and
  // repeated ends back off (0, 100, 250, 500 ms …); the first restart of each is the real cost.
  const restartMs: number[] = [];
  for (const name of names.slice(0, RESTARTS)) {
    const token = tokens.get(name)!;
    const pid = sandboxPids(runner).get(name)!;
    const killed = performance.now();
    Deno.kill(pid, "SIGKILL");
    // Until the runner has noticed, a call may still go to the dead sandbox: answered by policy.
    await until(async () => {
      const { reply } = await conn.reqCall({ token, headers: [["x-answer", "1"]] });
      return reply.rpc === 2 && reply.action === "stop" ? reply : null;
    }, 20_000);
    restartMs.push(performance.now() - killed);
  }
  console.log(
    `# restart to serving (SIGKILL of the sandbox to the plugin's next answer), ms: median ` +
      `${median(restartMs).toFixed(0)}, min ${Math.min(...restartMs).toFixed(0)}, max ` +
      `${Math.max(...restartMs).toFixed(0)} (n=${restartMs.length}, one per sandbox)`,
  );
  Object.assign(result, {
    restart_to_serving_ms_median: Math.round(median(restartMs)),
    restart_to_serving_ms_all: restartMs.map((ms) => Math.round(ms)),
  });
  conn.close();
} finally {
  await runner.stop();
}

// ---- 3: sandboxed vs inline call latency ---------------------------------------------------

const latency = await startRunner({
  config: {
    bundled: false,
    plugins: {
      bench0: { module: `${pluginDir}/bench0.ts` },
      inline0: { module: `${pluginDir}/inline0.ts`, isolation: "inline" },
    },
  },
});
try {
  const haveLoadgen = await Deno.stat(values.loadgen).then(() => true, () => false);
  const confs: Record<string, string> = {
    none: "absent={}", // an unknown plugin is left out: the route has no plugin
    inline: "inline0={}",
    sandboxed: "bench0={}",
  };
  const table: Record<string, { p50_us: number; rps?: number }> = {};
  if (haveLoadgen) {
    for (const conns of [1, 16]) {
      for (const [label, conf] of Object.entries(confs)) {
        const p50: number[] = [];
        const rps: number[] = [];
        for (let run = 0; run < RUNS; run++) {
          const out = await new Deno.Command(values.loadgen, {
            args: [
              "--socket",
              latency.socket,
              "--conns",
              String(conns),
              "--duration",
              String(SECONDS),
              "--warmup",
              "1",
              "--conf",
              conf,
              "--quiet",
              "--pid",
              String(latency.process.pid),
            ],
          }).output();
          const json = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
          if (json.errors) throw new Error(`loadgen errors: ${JSON.stringify(json)}`);
          p50.push(json.p50_us);
          rps.push(json.rps);
        }
        table[`${label}@${conns}`] = { p50_us: median(p50), rps: Math.round(median(rps)) };
      }
    }
    for (const conns of [1, 16]) {
      const none = table[`none@${conns}`]!.p50_us;
      const inline = table[`inline@${conns}`]!.p50_us;
      const sandboxed = table[`sandboxed@${conns}`]!.p50_us;
      console.log(
        `# latency at ${conns} connection(s), p50 µs (median of ${RUNS} × ${SECONDS} s): ` +
          `no plugin ${none.toFixed(1)}, inline ${inline.toFixed(1)}, sandboxed ${
            sandboxed.toFixed(1)
          }` +
          ` → a sandboxed call adds ${(sandboxed - inline).toFixed(1)} µs over an inline one; ` +
          `req/s: ${table[`none@${conns}`]!.rps} / ${table[`inline@${conns}`]!.rps} / ` +
          `${table[`sandboxed@${conns}`]!.rps}`,
      );
      result[`added_us_sandboxed_vs_inline_p50_at_${conns}`] = Number(
        (sandboxed - inline).toFixed(1),
      );
    }
    result.latency = table;
  } else {
    const conn = await ApisixConn.connect(latency.socket);
    for (const [label, conf] of Object.entries(confs)) {
      const [name, raw] = conf.split("=") as [string, string];
      const token = await conn.token([[name, raw]]);
      const samples: number[] = [];
      for (let i = 0; i < 2000; i++) {
        const started = performance.now();
        await conn.reqCall({ token });
        if (i >= 200) samples.push((performance.now() - started) * 1000);
      }
      table[label] = { p50_us: median(samples) };
    }
    conn.close();
    const added = table.sandboxed!.p50_us - table.inline!.p50_us;
    console.log(
      `# latency (own client, 1 connection), p50 µs: no plugin ${table.none!.p50_us.toFixed(0)}, ` +
        `inline ${table.inline!.p50_us.toFixed(0)}, sandboxed ${
          table.sandboxed!.p50_us.toFixed(0)
        }` +
        ` → a sandboxed call adds ${added.toFixed(0)} µs`,
    );
    result.added_us_sandboxed_vs_inline_p50_at_1 = Number(added.toFixed(1));
    result.latency = table;
  }
} finally {
  await latency.stop();
  await Deno.remove(pluginDir, { recursive: true });
}

console.log(JSON.stringify({ bench: "sandbox", ...result }));
