/**
 * What a plugin's worst reply costs everyone else. The runner is served in this process (its
 * real server, socket and sandbox processes), so that a probe timer can see how long its event
 * loop is held: the longest gap between two 1 ms ticks while the reply is handled, beside the
 * longest gap in a quiet second before it (on a shared machine the OS takes its share of both).
 * The clients run in processes of their own: a healthy route (bundled `say`, its own
 * connection) calls in a loop, and its worst and 99th-percentile latency are reported (and its
 * worst outside the hostile calls: what the machine's own noise costs it), with the
 * process's peak resident memory and how the hostile call was answered. Cases:
 *
 * - `api-65536`: 65,536 `req.headers.set` calls through the public API (the most accepted);
 * - `api-400k`: 400,000 of them (over the limit; the worker's encoder refuses);
 * - `crafted-worst`: a hand-made patch with 65,536 entries in each of its three lists (the
 *   largest the runner accepts; the worker's `Patch.encode` replaced, as a hostile plugin can);
 * - `crafted-1m`: a hand-made patch with 1,000,000 request headers (refused from its counts);
 * - `crafted-16m`: a hand-made 16 MiB header value (refused from its lengths).
 *
 * Then a log flood: a plugin that writes 8 KiB log lines past its console's limit, through the
 * runtime's own message writer, for `--seconds`; the bytes per second that reached the runner's
 * log are reported.
 *
 * Run: `deno run -A benchmarks/bounds_bench.ts [--seconds 3] [--repeat 1] [--root <checkout>]`
 * (`--root` measures another checkout's runner, e.g. the code before these bounds; `--repeat`
 * makes each hostile call that many times, and the loop's hold is then also given as the median
 * of the calls' holds: on a shared machine the OS's preemptions show up in single calls, the
 * runner's own holds in every one). Prints human lines and one JSON line at the end.
 *
 * @module
 */
import { configureSync } from "@logtape/logtape";
import { parseArgs } from "node:util";
import { ApisixConn, type Reply } from "../tests/support/apisix.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "3" },
    repeat: { type: "string", default: "1" },
    root: { type: "string" },
    // Internal: the healthy route's client, in a process of its own so that the benchmark's
    // decoding of the hostile reply does not count as the route's latency.
    client: { type: "string" },
    token: { type: "string" },
    case: { type: "string" },
    cases: { type: "string", default: "api-65536,api-400000,crafted-worst,crafted-1m,crafted-16m" },
  },
});
const SECONDS = Number(values.seconds);

if (values.client && values.case) {
  // One hostile call; prints how it was answered.
  const conn = await ApisixConn.connect(values.client);
  const { reply } = await conn.reqCall({
    token: Number(values.token),
    headers: [["x-case", values.case]],
  });
  console.log(JSON.stringify(describe(reply)));
  Deno.exit(0);
}

if (values.client) {
  const conn = await ApisixConn.connect(values.client);
  const token = Number(values.token);
  let done = false;
  (async () => {
    for await (const _ of Deno.stdin.readable) {
      // Any input ends the loop.
      break;
    }
    done = true;
  })();
  // Each call as [when it ended (ms since the epoch), its latency (ms)].
  const latencies: [number, number][] = [];
  while (!done) {
    const started = performance.now();
    await conn.reqCall({ token });
    const ended = performance.now();
    latencies.push([performance.timeOrigin + ended, ended - started]);
  }
  console.log(JSON.stringify(latencies));
  Deno.exit(0);
}

/** Starts the healthy route's client; `stop()` resolves to its calls ([ended, latency], ms). */
function healthyClient(socket: string, token: number): { stop(): Promise<[number, number][]> } {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "--client",
      socket,
      "--token",
      String(token),
    ],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  return {
    async stop() {
      await writer.write(new Uint8Array([10]));
      await writer.close();
      const out = await child.output();
      return JSON.parse(new TextDecoder().decode(out.stdout));
    },
  };
}

function residentMb(): number {
  return Deno.memoryUsage().rss / (1 << 20);
}

/** Runs one hostile call from a process of its own; resolves to how it was answered. */
async function hostileCall(socket: string, token: number, which: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "--client",
      socket,
      "--token",
      String(token),
      "--case",
      which,
    ],
    stdout: "piped",
  }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** Watches the event loop: the longest gap between two 1 ms ticks since the last `take()`. */
function loopProbe(): { take(): number; stop(): void } {
  let last = performance.now();
  let worst = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last);
    last = now;
  }, 1);
  return {
    take() {
      const value = worst;
      worst = 0;
      last = performance.now();
      return value;
    },
    stop: () => clearInterval(timer),
  };
}

const PLUGIN = `
import { definePlugin } from "@apisix/deno-plugin-runner";
const api = import.meta.resolve("@apisix/deno-plugin-runner");
const { Patch } = await import(new URL("./api/patch.ts", api).href);
const { BatchWriter, Kind, LogLevel } = await import(new URL("./sandbox/messages.ts", api).href);
const encode = Patch.prototype.encode;
const enc = new TextEncoder();
const str = (out, text) => out.bytes(typeof text === "string" ? enc.encode(text) : text);
const headers = (out, n) => {
  for (let i = 0; i < n; i++) { out.u8(4); str(out, "h" + i); out.u16(1); str(out, "v"); }
};
const CRAFTED = {
  "crafted-worst": (out) => {
    headers(out, 65536);
    for (let i = 0; i < 65536; i++) { out.u8(5); str(out, "a" + i); out.u16(1).u8(1); str(out, "v"); }
    out.u8(7).u32(65536);
    for (let i = 0; i < 65536; i++) { str(out, "r" + i); str(out, "v"); }
  },
  "crafted-1m": (out) => headers(out, 1000000),
  "crafted-16m": (out) => { out.u8(4); str(out, "x-big"); out.u16(1); str(out, new Uint8Array(16 << 20).fill(97)); },
};
let flooding = false;
export default definePlugin({
  name: "worst",
  requestFilter(_conf, req, res) {
    const which = req.headers.get("x-case") ?? "";
    const api = /^api-(\\d+)$/.exec(which);
    if (api) { for (let i = 0; i < Number(api[1]); i++) req.headers.set("h" + i, "v"); return; }
    const write = CRAFTED[which];
    if (write) { Patch.prototype.encode = function (out) { Patch.prototype.encode = encode; write(out); }; return; }
    if (which === "flood" && !flooding) {
      flooding = true;
      const line = "z".repeat(8180);
      const end = BatchWriter.prototype.end;
      // 5,000 lines of 8 KiB a second: past the console's limit, under the runner's flood kill.
      setInterval(() => {
        for (let i = 0; i < 50; i++) {
          BatchWriter.prototype.end = function () {
            end.call(this);
            BatchWriter.prototype.end = end;
            this.begin(Kind.Log).u8(LogLevel.Info).rawUtf8("flood " + line);
            end.call(this);
          };
          console.log("x");
        }
      }, 10);
    }
    res.body = "alive";
  },
});
`;

const dir = await Deno.makeTempDir({ prefix: "a6-bounds-bench-" });
await Deno.writeTextFile(`${dir}/worst.ts`, PLUGIN);
const root = values.root ? `file://${values.root.replace(/\/?$/, "/")}` : "../";
const { parseConfig } = await import(
  new URL("runner/config/config.ts", new URL(root, import.meta.url)).href
);
const { RunnerServer } = await import(
  new URL("runner/apisix/server.ts", new URL(root, import.meta.url)).href
);
// What reaches the log from the flooding plugin, in bytes (the lines are not kept).
let floodBytes = 0;
configureSync({
  reset: true,
  sinks: {
    count(record) {
      if (record.category.includes("worst")) {
        floodBytes += record.message.reduce(
          (n: number, part: unknown) => n + String(part).length,
          0,
        );
      }
    },
  },
  loggers: [{ category: ["a6"], sinks: ["count"], lowestLevel: "debug" }],
});
const socket = `${dir}/runner.sock`;
const server = new RunnerServer(
  parseConfig({
    bundled: true,
    plugins: { worst: { module: `${dir}/worst.ts`, memoryMb: 1024, timeoutMs: 30_000 } },
  }, `${dir}/runner.json`),
  { path: socket, confExpireSeconds: 3600 },
);
server.listen();
const serving = server.serve();
const probe = loopProbe();
const result: Record<string, unknown> = { root: values.root ?? "this checkout" };

function describe(reply: Reply): string {
  if (reply.rpc === 0) return `error frame ${reply.code}`;
  if (reply.rpc === 2 && reply.action === "rewrite") {
    return `rewrite (${reply.headers.length} headers, ${reply.args.length} args, ` +
      `${reply.respHeaders.length} response headers)`;
  }
  return JSON.stringify(reply).slice(0, 80);
}

try {
  const healthy = await ApisixConn.connect(socket);
  const sayToken = await healthy.token([["say", JSON.stringify({ body: "ok" })]]);
  const worstToken = await healthy.token([["worst", "{}"]]);
  for (let i = 0; i < 200; i++) {
    await healthy.reqCall({ token: sayToken });
    await healthy.reqCall({ token: worstToken });
  }
  healthy.close();
  const idleMb = residentMb();
  console.log(`# runner resident memory before: ${idleMb.toFixed(1)} MiB`);
  result.runner_rss_mib_idle = Number(idleMb.toFixed(1));

  for (const which of values.cases.split(",")) {
    let peakMb = residentMb();
    const sampler = setInterval(() => peakMb = Math.max(peakMb, residentMb()), 5);
    const client = healthyClient(socket, sayToken);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const quietGap = probe.take();
    const holds: number[] = [];
    // When the hostile calls were in flight (ms since the epoch).
    const windows: [number, number][] = [];
    let reply = "";
    let hostileMs = 0;
    for (let call = 0; call < Number(values.repeat); call++) {
      if (call) await new Promise((resolve) => setTimeout(resolve, 300));
      probe.take();
      const started = performance.now();
      reply = await hostileCall(socket, worstToken, which);
      hostileMs = performance.now() - started;
      windows.push([
        performance.timeOrigin + started,
        performance.timeOrigin + started + hostileMs,
      ]);
      holds.push(probe.take());
    }
    const gap = Math.max(...holds);
    const medianGap = [...holds].sort((a, b) => a - b)[Math.floor(holds.length / 2)]!;
    await new Promise((resolve) => setTimeout(resolve, 200));
    // The client's first calls (its start-up, its JIT warming up) are not the route's latency.
    const calls = (await client.stop()).slice(200);
    const latencies = calls.map(([, latency]) => latency);
    // A call that ended during a hostile call, or up to 50 ms after it, counts as during it.
    const during = (ended: number) =>
      windows.some(([from, to]) => ended >= from && ended <= to + 50);
    const quietWorst = Math.max(0, ...calls.filter(([ended]) => !during(ended)).map(([, l]) => l));
    clearInterval(sampler);
    const sorted = [...latencies].sort((a, b) => a - b);
    const worst = sorted.at(-1)!;
    const p99 = sorted[Math.floor(sorted.length * 0.99)]!;
    const p50 = sorted[Math.floor(sorted.length * 0.5)]!;
    console.log(
      `# ${which}: answered ${reply} in ${hostileMs.toFixed(0)} ms; runner's event loop held ` +
        `at most ${gap.toFixed(1)} ms (median of ${holds.length}: ${medianGap.toFixed(1)} ms; a ` +
        `quiet second: ${quietGap.toFixed(1)} ms); healthy route ` +
        `worst ${worst.toFixed(1)} ms (outside the hostile calls: ${
          quietWorst.toFixed(1)
        } ms), p99 ${p99.toFixed(2)} ms, p50 ${p50.toFixed(2)} ms ` +
        `(${latencies.length} calls); runner peak RSS ${peakMb.toFixed(0)} MiB`,
    );
    result[which] = {
      reply,
      loop_held_max_ms: Number(gap.toFixed(1)),
      loop_held_median_ms: Number(medianGap.toFixed(1)),
      loop_held_quiet_ms: Number(quietGap.toFixed(1)),
      hostile_ms: Math.round(hostileMs),
      healthy_worst_ms: Number(worst.toFixed(1)),
      healthy_worst_outside_ms: Number(quietWorst.toFixed(1)),
      healthy_p99_ms: Number(p99.toFixed(2)),
      healthy_p50_ms: Number(p50.toFixed(2)),
      healthy_calls: latencies.length,
      runner_peak_rss_mib: Math.round(peakMb),
    };
    await new Promise((resolve) => setTimeout(resolve, 300));
  }

  // ---- the log flood ------------------------------------------------------------------------
  const restarts = server.plugins.host("worst")!.restarts;
  await hostileCall(socket, worstToken, "flood");
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const before = floodBytes;
  const floodStart = performance.now();
  await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000));
  const perSecond = (floodBytes - before) / ((performance.now() - floodStart) / 1000);
  const killed = server.plugins.host("worst")!.restarts > restarts;
  console.log(
    `# log flood (5,000 lines of 8 KiB a second past the console's limit): ` +
      `${(perSecond / 1024).toFixed(0)} KiB/s reached the runner's log` +
      (killed ? " (the sandbox was killed as a flood)" : ""),
  );
  result.log_flood_bytes_per_second = Math.round(perSecond);
  result.log_flood_killed = killed;
} finally {
  probe.stop();
  await server.shutdown(200);
  await serving.catch(() => {});
  await Deno.remove(dir, { recursive: true });
}
console.log(JSON.stringify(result));
