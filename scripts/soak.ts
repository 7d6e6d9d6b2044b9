/**
 * The soak benchmark: `deno task soak -- --minutes N` (not part of CI).
 *
 * Starts a runner with the bundled `say` and the test plugins of `tests/fixtures/soak` and drives
 * a paced mix of routes over many connections for N minutes: plain answers, header copies,
 * request and upstream bodies through ExtraInfo, variables, a two-plugin chain, a plugin that
 * throws when asked to, and one that now and then sleeps past its deadline (so its sandbox is
 * killed and restarted). Connections are closed and reopened now and then, and some clients
 * vanish in the middle of an ExtraInfo exchange. Every reply is checked; every error must have
 * a known cause. Every 10 s it samples the resident memory and open descriptors of the runner
 * and of each sandbox, and the sandbox restarts. It prints one line per minute and a JSON
 * summary, and flags growth of more than 10 % after the warm-up. Optionally the shared loadgen
 * (built into `.bench/loadgen/` by `deno task bench`) adds closed-loop pressure on `say`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  decodeAsk,
  decodeReply,
  encodeExtraInfoResp,
  encodePrepareConf,
  encodeReqCall,
  encodeRespCall,
  type Entry,
  latin1,
  type Reply,
} from "../tests/support/apisix.ts";
import { pause, RawConn, rawFrame } from "../tests/support/raw_conn.ts";
import { type OwnRunner as RunningRunner, startRunnerUnderOwnName } from "./start_runner.ts";
import { fixtureConfig } from "../tests/fixtures/soak/plugins.ts";

const USAGE = `Usage: deno task soak [-- options]

  --minutes N          how long to drive load (default 10)
  --warmup N           minutes not judged for growth (default 2)
  --conns N            client connections (default 16)
  --rate N             target requests per second, all connections together (default 400)
  --loadgen-conns N    also run .bench/loadgen with N connections on say (default 0: off)
  --trace-gc           run the runner with V8's --trace-gc and report its heap after each
                       minute's last full GC (tells JS heap growth from native memory)
  --v8-flags FLAGS     V8 flags for the runner (DENO_V8_FLAGS), for experiments
  --runner-log FILE    where to keep the runner's log (default: a file in the temp folder)
  --json FILE          also write the summary to FILE`;

/** The sleepy plugin's deadline: the soak's slow calls sleep past it. */
const SLEEPY_TIMEOUT_MS = 500;
/** One slow call this often: at most 3 sandbox kills in any minute, under the crash limit of 5. */
const SLOW_CALL_EVERY_MS = 20_000;
/** Share of flaky calls asked to throw. */
const FAIL_SHARE = 0.05;
/** Share of calls whose client vanishes in the middle of an ExtraInfo exchange. */
const ABANDON_SHARE = 0.002;
/** Requests per connection before it is closed and opened again. */
const REQUESTS_PER_CONNECTION = 500;
const SAMPLE_MS = 10_000;
const CALL_TIMEOUT_MS = 10_000;

type RouteName =
  | "say"
  | "headers"
  | "body"
  | "vars"
  | "chain"
  | "flaky"
  | "sleepy"
  | "response";

interface Route {
  name: RouteName;
  weight: number;
  conf: Entry[];
  token: number;
}

const ROUTES: Omit<Route, "token">[] = [
  { name: "say", weight: 30, conf: [["say", '{"body":"hello"}']] },
  { name: "headers", weight: 12, conf: [["echo", '{"headers":true}']] },
  { name: "body", weight: 12, conf: [["echo", '{"digest":true}']] },
  { name: "vars", weight: 12, conf: [["vars", '{"names":["remote_addr","server_port"]}']] },
  { name: "chain", weight: 8, conf: [["vars", '{"names":["uri"]}'], ["echo", '{"touch":true}']] },
  { name: "flaky", weight: 10, conf: [["flaky", ""]] },
  { name: "sleepy", weight: 8, conf: [["sleepy", '{"sleepMs":0}']] },
  { name: "response", weight: 8, conf: [["echo", '{"digest":true}']] },
];

/** Counts for one minute. */
interface Minute {
  minute: number;
  requests: number;
  ok: number;
  /** Errors with a known cause, by kind. */
  explained: Record<string, number>;
  /** Errors without one, by kind. */
  unexplained: Record<string, number>;
  abandoned: number;
  reconnects: number;
  latencies: number[];
  samples: Sample[];
  restarts: number;
  /** With --trace-gc: the runner's V8 heap after the minute's last full GC. */
  heap: { usedMb: number; committedMb: number } | null;
}

interface ProcessSample {
  pid: number;
  name: string;
  rssMb: number;
  fds: number;
}

interface Sample {
  at: number;
  runner: ProcessSample;
  sandboxes: ProcessSample[];
  loadavg: number;
  cpuBusyPct: number;
}

function newMinute(minute: number): Minute {
  return {
    minute,
    requests: 0,
    ok: 0,
    explained: {},
    unexplained: {},
    abandoned: 0,
    reconnects: 0,
    latencies: [],
    samples: [],
    restarts: 0,
    heap: null,
  };
}

function bump(counts: Record<string, number>, kind: string): void {
  counts[kind] = (counts[kind] ?? 0) + 1;
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>),
  );
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---- sampling --------------------------------------------------------------------------
// Deno reads nothing under /proc without --allow-all, so ps, ls and cat do it.

async function run(command: string, args: string[]): Promise<string> {
  const { stdout } = await new Deno.Command(command, { args, stderr: "null" }).output();
  return new TextDecoder().decode(stdout);
}

async function fdCount(pid: number): Promise<number> {
  return (await run("ls", [`/proc/${pid}/fd`])).split("\n").filter((name) => name !== "").length;
}

/** The runner and its children: pid, resident memory and command line. */
async function processes(
  runner: number,
): Promise<Array<{ pid: number; rssMb: number; args: string }>> {
  const out = await run("ps", [
    "-o",
    "pid=,rss=,stat=,args=",
    "-p",
    String(runner),
    "--ppid",
    String(runner),
  ]);
  return out.split("\n").map((line) => line.trim().split(/\s+/)).filter((f) =>
    f.length >= 4 && f[2]![0] !== "Z"
  )
    .map((f) => ({ pid: Number(f[0]), rssMb: Number(f[1]) / 1024, args: f.slice(3).join(" ") }));
}

function sandboxName(args: string): string {
  const channel = args.split(" ").at(-1) ?? "";
  return channel.split("/").at(-1)?.replace(/-\d+\.sock$/, "").replace(/^plugin_/, "") ?? "?";
}

let lastCpu: { busy: number; total: number } | null = null;

async function cpuBusyPct(): Promise<number> {
  const line = (await run("cat", ["/proc/stat"])).split("\n")[0] ?? "";
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (values[3] ?? 0) + (values[4] ?? 0);
  const total = values.reduce((a, b) => a + b, 0);
  const now = { busy: total - idle, total };
  const pct = lastCpu && now.total > lastCpu.total
    ? (100 * (now.busy - lastCpu.busy)) / (now.total - lastCpu.total)
    : 0;
  lastCpu = now;
  return pct;
}

async function loadavg(): Promise<string> {
  return (await run("cat", ["/proc/loadavg"])).trim();
}

async function sample(runner: RunningRunner): Promise<Sample> {
  const pid = runner.process.pid;
  const list = await processes(pid);
  const sandboxes: ProcessSample[] = [];
  let self: ProcessSample = { pid, name: "runner", rssMb: 0, fds: 0 };
  for (const p of list) {
    const fds = await fdCount(p.pid);
    if (p.pid === pid) self = { pid, name: "runner", rssMb: p.rssMb, fds };
    else sandboxes.push({ pid: p.pid, name: sandboxName(p.args), rssMb: p.rssMb, fds });
  }
  return {
    at: Date.now(),
    runner: self,
    sandboxes: sandboxes.sort((a, b) => a.name.localeCompare(b.name)),
    loadavg: Number((await loadavg()).split(" ")[0]),
    cpuBusyPct: await cpuBusyPct(),
  };
}

// ---- the client ---------------------------------------------------------------------------

/** When the sleepy plugin last overran its deadline (start of the slow call). */
const slowCalls: number[] = [];

class Client {
  #socket: string;
  #routes: Route[];
  #total: number;
  #conn: RawConn | null = null;
  #used = 0;
  #id: number;
  #stats: () => Minute;

  constructor(socket: string, routes: Route[], id: number, stats: () => Minute) {
    this.#socket = socket;
    this.#routes = routes;
    this.#total = routes.reduce((n, r) => n + r.weight, 0);
    this.#id = id;
    this.#stats = stats;
  }

  #pick(): Route {
    let at = Math.random() * this.#total;
    for (const route of this.#routes) {
      at -= route.weight;
      if (at < 0) return route;
    }
    return this.#routes[0]!;
  }

  async #connection(): Promise<RawConn> {
    if (this.#conn && this.#used < REQUESTS_PER_CONNECTION) return this.#conn;
    if (this.#conn) {
      this.#conn.close();
      this.#stats().reconnects++;
    }
    this.#conn = await RawConn.connect(this.#socket);
    this.#used = 0;
    return this.#conn;
  }

  #drop(): void {
    this.#conn?.close();
    this.#conn = null;
  }

  /** Runs paced calls until `until`; `interval` ms between call starts. */
  async run(until: () => number, interval: number, nextSlowCall: () => boolean): Promise<void> {
    let next = performance.now() + Math.random() * interval;
    while (performance.now() < until()) {
      const wait = next - performance.now();
      if (wait > 0) await pause(wait);
      next += interval;
      if (next < performance.now() - 1000) next = performance.now();
      const route = this.#pick();
      const slow = route.name === "sleepy" && nextSlowCall();
      await this.#call(route, slow);
    }
    this.#drop();
  }

  async #call(route: Route, slow: boolean): Promise<void> {
    // Counted in the minute the call ends in.
    const stats = () => this.#stats();
    const started = performance.now();
    const fail = route.name === "flaky" && Math.random() < FAIL_SHARE;
    const abandon = (route.name === "vars" || route.name === "body") &&
      Math.random() < ABANDON_SHARE;
    const id = (this.#id << 20) + (this.#used & 0xfffff);
    const body = route.name === "body" || route.name === "response"
      ? crypto.getRandomValues(new Uint8Array(1024 + Math.floor(Math.random() * 7168)))
      : null;
    const headers: Entry[] = [
      ["host", "soak.test"],
      ["user-agent", "soak"],
      ["x-request-id", String(id)],
      ["x-multi", "1"],
      ["x-multi", "2"],
    ];
    if (fail) headers.push(["x-fail", "1"]);
    if (slow) headers.push(["x-sleep-ms", String(SLEEPY_TIMEOUT_MS * 2)]);
    const payload = route.name === "response"
      ? encodeRespCall({ id, status: 200, headers, token: route.token })
      : encodeReqCall({
        id,
        method: body ? 2 : 0,
        path: `/soak/${route.name}`,
        args: [["n", String(this.#used)]],
        headers,
        token: route.token,
      });
    let reply: Reply;
    try {
      const conn = await this.#connection();
      this.#used++;
      if (slow) slowCalls.push(Date.now());
      await conn.write(rawFrame(route.name === "response" ? 4 : 2, payload));
      for (;;) {
        const frame = await conn.frame(CALL_TIMEOUT_MS);
        if (frame.type !== 3) {
          reply = decodeReply(frame);
          break;
        }
        if (abandon) {
          // The client goes away instead of answering.
          this.#drop();
          stats().abandoned++;
          return;
        }
        const ask = decodeAsk(frame.payload);
        const answer = ask.kind === "var" ? `v-${ask.name}` : body;
        await conn.write(rawFrame(3, encodeExtraInfoResp(answer)));
      }
    } catch (error) {
      this.#drop();
      stats().requests++;
      bump(stats().unexplained, `client:${(error as Error).message.slice(0, 60)}`);
      return;
    }
    stats().requests++;
    stats().latencies.push(performance.now() - started);
    const problem = await this.#check(route, reply, { fail, slow, body, id });
    if (problem === null) stats().ok++;
    else if (problem.explained) bump(stats().explained, problem.kind);
    else bump(stats().unexplained, problem.kind);
  }

  async #check(
    route: Route,
    reply: Reply,
    call: { fail: boolean; slow: boolean; body: Uint8Array | null; id: number },
  ): Promise<{ kind: string; explained: boolean } | null> {
    if (reply.rpc === 0) {
      const kind = `${route.name}:error_code_${reply.code}`;
      if (reply.code !== 1) return { kind, explained: false };
      if (route.name === "flaky" && call.fail) return { kind: "flaky:threw", explained: true };
      if (route.name === "sleepy" && call.slow) return { kind: "sleepy:timeout", explained: true };
      if (route.name === "sleepy") {
        // Calls in the sandbox when a slow call overran the deadline are killed with it.
        const now = Date.now();
        const near = slowCalls.some((at) => now - at < SLEEPY_TIMEOUT_MS + 2000);
        if (near) return { kind: "sleepy:killed_with_timeout", explained: true };
      }
      return { kind, explained: false };
    }
    const headers = (list: Entry[]) => Object.fromEntries(list);
    const wrong = (what: string) => ({ kind: `${route.name}:${what}`, explained: false });
    switch (route.name) {
      case "say":
        if (reply.rpc !== 2 || reply.action !== "stop" || latin1(reply.body!) !== "hello") {
          return wrong("reply");
        }
        break;
      case "headers": {
        if (reply.rpc !== 2 || reply.action !== "stop") return wrong("reply");
        const multi = reply.headers.filter(([name]) => name === "x-multi").map(([, v]) => v);
        if (reply.headers.length !== 5 || multi.join() !== "1,2") return wrong("headers");
        break;
      }
      case "body":
        if (reply.rpc !== 2 || reply.action !== "stop") return wrong("reply");
        if (headers(reply.headers)["x-digest"] !== await sha256Hex(call.body!)) {
          return wrong("digest");
        }
        break;
      case "response":
        if (reply.rpc !== 4 || reply.id !== call.id) return wrong("reply");
        if (headers(reply.headers)["x-digest"] !== await sha256Hex(call.body!)) {
          return wrong("digest");
        }
        break;
      case "vars":
        if (reply.rpc !== 2 || reply.action !== "rewrite") return wrong("reply");
        if (
          headers(reply.headers)["x-vars"] !== "remote_addr=v-remote_addr;server_port=v-server_port"
        ) return wrong("vars");
        break;
      case "chain": {
        if (reply.rpc !== 2 || reply.action !== "rewrite") return wrong("reply");
        const h = headers(reply.headers);
        if (h["x-vars"] !== "uri=v-uri" || h["x-echo"] !== "touched") return wrong("chain");
        break;
      }
      case "flaky":
        if (call.fail) return wrong("did_not_throw");
        if (reply.rpc !== 2 || reply.action !== "rewrite") return wrong("reply");
        break;
      case "sleepy":
        if (reply.rpc !== 2 || reply.action !== "stop" || latin1(reply.body!) !== "slept 0") {
          return wrong(call.slow ? "slow_call_answered" : "reply");
        }
        break;
    }
    return null;
  }
}

// ---- loadgen (optional) ------------------------------------------------------------------

/** Where `deno task bench` builds the shared load generator. */
const LOADGEN = new URL("../.bench/loadgen/loadgen", import.meta.url).pathname;

async function runLoadgen(
  socket: string,
  conns: number,
  until: number,
  onResult: (result: { requests: number; errors: number }) => void,
): Promise<void> {
  while (performance.now() < until - 5000) {
    const seconds = Math.min(60, Math.floor((until - performance.now()) / 1000) - 3);
    if (seconds < 2) break;
    const out = await new Deno.Command(LOADGEN, {
      args: [
        "--socket",
        socket,
        "--conns",
        String(conns),
        "--duration",
        String(seconds),
        "--warmup",
        "0",
        "--quiet",
        "--conf",
        'say={"body":"hello"}',
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const line = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "{}";
    try {
      const json = JSON.parse(line);
      onResult({ requests: json.requests ?? 0, errors: json.errors ?? 0 });
    } catch {
      onResult({ requests: 0, errors: 1 });
    }
  }
}

// ---- main ---------------------------------------------------------------------------------

/**
 * The middle of a minute's samples: a sandbox sampled while it restarts (fewer descriptors, a
 * fresh heap) should not move the minute's figure.
 */
function median(values: number[]): number {
  if (!values.length) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function mean(values: number[]): number {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : 0;
}

function percentile(values: number[], p: number): number {
  if (!values.length) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Per-minute means of one measure, and whether it grew more than 10 % after the warm-up. */
function growth(values: number[], warmup: number) {
  const judged = values.slice(warmup);
  const baseline = judged[0] ?? 0;
  const max = judged.length ? Math.max(...judged) : 0;
  const last = judged.at(-1) ?? 0;
  return {
    perMinute: values.map((v) => round(v)),
    baseline: round(baseline),
    max: round(max),
    last: round(last),
    maxRatio: baseline ? round(max / baseline, 3) : null,
    lastRatio: baseline ? round(last / baseline, 3) : null,
    flagged: baseline > 0 && max > baseline * 1.1,
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args,
    options: {
      minutes: { type: "string", default: "10" },
      warmup: { type: "string", default: "2" },
      conns: { type: "string", default: "16" },
      rate: { type: "string", default: "400" },
      "loadgen-conns": { type: "string", default: "0" },
      json: { type: "string" },
      "trace-gc": { type: "boolean" },
      "v8-flags": { type: "string" },
      "runner-log": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const minutes = Number(values.minutes);
  const warmup = Number(values.warmup);
  const conns = Number(values.conns);
  const rate = Number(values.rate);
  const loadgenConns = Number(values["loadgen-conns"]);
  if (!(minutes > 0) || !(warmup >= 0) || !(conns > 0) || !(rate > 0) || !(loadgenConns >= 0)) {
    console.error(USAGE);
    return 2;
  }

  const v8Flags = [values["trace-gc"] ? "--trace-gc" : "", values["v8-flags"] ?? ""]
    .filter(Boolean).join(",");
  const runner = await startRunnerUnderOwnName(
    fixtureConfig({ sleepy: { timeoutMs: SLEEPY_TIMEOUT_MS } }),
    v8Flags ? { DENO_V8_FLAGS: v8Flags } : {},
  );
  const runnerLog = values["runner-log"] ??
    await Deno.makeTempFile({ prefix: "soak-runner-", suffix: ".log" });
  // "Mark-Compact 41.2 (47.9) -> 33.8 (48.1) MB": the heap used (committed) after a full GC.
  const heapAfterGc = () => {
    for (let i = runner.lines.length - 1; i >= 0; i--) {
      const match = /Mark-Compact.*-> ([\d.]+) \(([\d.]+)\) MB/.exec(runner.lines[i]!);
      if (match) return { usedMb: Number(match[1]), committedMb: Number(match[2]) };
    }
    return null;
  };
  const setup = await RawConn.connect(runner.socket);
  const routes: Route[] = [];
  for (const route of ROUTES) {
    await setup.write(rawFrame(1, encodePrepareConf(route.conf, `route#soak-${route.name}#1`)));
    const reply = decodeReply(await setup.frame());
    if (reply.rpc !== 1) throw new Error(`PrepareConf ${route.name}: ${JSON.stringify(reply)}`);
    routes.push({ ...route, token: reply.token });
  }
  setup.close();

  const started = performance.now();
  let until = started + minutes * 60_000;
  // The machine is shared: if something else stops the runner, say so instead of counting
  // thousands of refused connections.
  let exitedEarly: { minute: number; code: number; signal: string | null; cause: string } | null =
    null;
  runner.process.status.then((status) => {
    if (performance.now() >= until) return;
    exitedEarly = {
      minute: round((performance.now() - started) / 60_000, 2),
      code: status.code,
      signal: status.signal,
      cause: runner.lines.findLast((l) => /shutting down|fatal|panic/i.test(l)) ?? "no log line",
    };
    console.log(`the runner exited early: ${JSON.stringify(exitedEarly)}`);
    until = performance.now();
  });
  const minuteStats: Minute[] = [newMinute(1)];
  const current = () => minuteStats.at(-1)!;
  let lastSlow = 0;
  const nextSlowCall = () => {
    const now = performance.now();
    if (now - lastSlow < SLOW_CALL_EVERY_MS) return false;
    lastSlow = now;
    return true;
  };
  console.log(
    `soak: ${minutes} min, ${conns} connections, target ${rate} req/s, warm-up ${warmup} min, ` +
      `runner pid ${runner.process.pid}${loadgenConns ? `, loadgen ${loadgenConns} conns` : ""}`,
  );

  const interval = (1000 * conns) / rate;
  const clients = Array.from(
    { length: conns },
    (_, i) =>
      new Client(runner.socket, routes, i + 1, current).run(() => until, interval, nextSlowCall),
  );
  const loadgen = { requests: 0, errors: 0 };
  if (loadgenConns && !await Deno.stat(LOADGEN).catch(() => null)) {
    throw new Error(`--loadgen-conns needs ${LOADGEN}: run deno task bench once to build it`);
  }
  const loadgenDone = loadgenConns
    ? runLoadgen(runner.socket, loadgenConns, until, (r) => {
      loadgen.requests += r.requests;
      loadgen.errors += r.errors;
    })
    : Promise.resolve();

  // Every start of a sandbox after its first is a restart.
  const restartsSoFar = () => {
    const ready = runner.lines.map((l) => /sandbox (\S+) ready in/.exec(l)?.[1]).filter(Boolean);
    return ready.length - new Set(ready).size;
  };
  let restartsCounted = 0;
  const sampling = (async () => {
    let nextSample = performance.now() + SAMPLE_MS;
    let nextMinute = started + 60_000;
    while (performance.now() < until) {
      await pause(Math.max(0, Math.min(nextSample, nextMinute, until) - performance.now()));
      if (exitedEarly) break;
      if (performance.now() >= nextSample) {
        nextSample += SAMPLE_MS;
        current().samples.push(await sample(runner));
        const total = restartsSoFar();
        current().restarts += total - restartsCounted;
        restartsCounted = total;
      }
      if (performance.now() >= nextMinute) {
        nextMinute += 60_000;
        current().heap = heapAfterGc();
        report(current());
        minuteStats.push(newMinute(minuteStats.length + 1));
      }
    }
  })();

  function report(m: Minute): void {
    const last = m.samples.at(-1);
    const sandboxRss = last ? last.sandboxes.reduce((n, s) => n + s.rssMb, 0) : 0;
    const sandboxFds = last ? last.sandboxes.reduce((n, s) => n + s.fds, 0) : 0;
    const errors = (counts: Record<string, number>) =>
      Object.entries(counts).map(([k, v]) => `${k}=${v}`).join(",") || "-";
    console.log(
      `min ${String(m.minute).padStart(2)}: ${m.requests} req (${round(m.requests / 60)}/s), ` +
        `ok ${m.ok}, explained ${errors(m.explained)}, unexplained ${errors(m.unexplained)}, ` +
        `abandoned ${m.abandoned}, reconnects ${m.reconnects}, ` +
        `p50 ${round(percentile(m.latencies, 50), 2)} ms p99 ${
          round(percentile(m.latencies, 99), 2)
        } ms | runner rss ${round(median(m.samples.map((s) => s.runner.rssMb)))} MB fds ${
          round(median(m.samples.map((s) => s.runner.fds)))
        } | sandboxes ${last?.sandboxes.length ?? 0} rss ${
          round(sandboxRss)
        } MB fds ${sandboxFds}` +
        ` | restarts ${m.restarts}${
          m.heap ? ` | heap after GC ${m.heap.usedMb} (${m.heap.committedMb}) MB` : ""
        } | load ${last?.loadavg ?? "-"} cpu ${round(mean(m.samples.map((s) => s.cpuBusyPct)))}%`,
    );
  }

  await Promise.all(clients);
  await sampling;
  await loadgenDone;
  // The last, partial minute is reported only if it has data.
  if (current().requests > 0 && current().samples.length) {
    current().heap = heapAfterGc();
    report(current());
  } else minuteStats.pop();

  // A final look: sandboxes still there, nothing running, and the runner exits cleanly.
  const finalSample = await sample(runner);
  const stopped = await runner.stop();
  await Deno.writeTextFile(runnerLog, runner.lines.join("\n") + "\n");

  const full = minuteStats.filter((m) => m.samples.length > 0);
  const bySandbox = new Map<string, number[]>();
  const fdsBySandbox = new Map<string, number[]>();
  for (const m of full) {
    const names = new Set(m.samples.flatMap((s) => s.sandboxes.map((x) => x.name)));
    for (const name of names) {
      const rss = m.samples.flatMap((s) => s.sandboxes.filter((x) => x.name === name)).map((x) =>
        x.rssMb
      );
      const fds = m.samples.flatMap((s) => s.sandboxes.filter((x) => x.name === name)).map((x) =>
        x.fds
      );
      bySandbox.set(name, [...bySandbox.get(name) ?? [], median(rss)]);
      fdsBySandbox.set(name, [...fdsBySandbox.get(name) ?? [], median(fds)]);
    }
  }
  const totals = (pick: (m: Minute) => Record<string, number>) => {
    const out: Record<string, number> = {};
    for (const m of full) for (const [k, v] of Object.entries(pick(m))) out[k] = (out[k] ?? 0) + v;
    return out;
  };
  const runnerRss = growth(full.map((m) => median(m.samples.map((s) => s.runner.rssMb))), warmup);
  const runnerFds = growth(full.map((m) => median(m.samples.map((s) => s.runner.fds))), warmup);
  const sandboxes = Object.fromEntries(
    [...bySandbox.keys()].sort().map((name) => [name, {
      rssMb: growth(bySandbox.get(name)!, warmup),
      fds: growth(fdsBySandbox.get(name)!, warmup),
    }]),
  );
  const unexplained = totals((m) => m.unexplained);
  const summary = {
    tool: "soak",
    minutes,
    warmupMinutes: warmup,
    connections: conns,
    targetRate: rate,
    machine: { cpus: navigator.hardwareConcurrency, loadavgAtEnd: await loadavg() },
    requests: full.reduce((n, m) => n + m.requests, 0),
    ok: full.reduce((n, m) => n + m.ok, 0),
    explained: totals((m) => m.explained),
    unexplained,
    abandoned: full.reduce((n, m) => n + m.abandoned, 0),
    reconnects: full.reduce((n, m) => n + m.reconnects, 0),
    restarts: full.reduce((n, m) => n + m.restarts, 0),
    loadgen: loadgenConns ? loadgen : null,
    perMinute: full.map((m) => ({
      minute: m.minute,
      requests: m.requests,
      ok: m.ok,
      explained: m.explained,
      unexplained: m.unexplained,
      abandoned: m.abandoned,
      restarts: m.restarts,
      p50Ms: round(percentile(m.latencies, 50), 2),
      p99Ms: round(percentile(m.latencies, 99), 2),
      runnerRssMb: round(median(m.samples.map((s) => s.runner.rssMb))),
      runnerFds: round(median(m.samples.map((s) => s.runner.fds))),
      sandboxRssMb: round(
        median(m.samples.map((s) => s.sandboxes.reduce((n, x) => n + x.rssMb, 0))),
      ),
      sandboxFds: round(median(m.samples.map((s) => s.sandboxes.reduce((n, x) => n + x.fds, 0)))),
      runnerHeapAfterGcMb: m.heap?.usedMb ?? null,
      loadavg: round(mean(m.samples.map((s) => s.loadavg)), 2),
      cpuBusyPct: round(mean(m.samples.map((s) => s.cpuBusyPct))),
    })),
    growth: { runnerRssMb: runnerRss, runnerFds, sandboxes },
    runnerLog,
    exitedEarly,
    final: {
      sandboxes: finalSample.sandboxes.map((s) => s.name),
      runnerExit: stopped.status.code,
      exitMs: Math.round(stopped.ms),
    },
    flags: [] as string[],
  };
  if (runnerRss.flagged) summary.flags.push("runner RSS grew more than 10% after warm-up");
  if (runnerFds.flagged) summary.flags.push("runner descriptors grew more than 10% after warm-up");
  for (const [name, s] of Object.entries(sandboxes)) {
    if (s.rssMb.flagged) summary.flags.push(`sandbox ${name} RSS grew more than 10% after warm-up`);
    if (s.fds.flagged) summary.flags.push(`sandbox ${name} descriptors grew more than 10%`);
  }
  if (Object.keys(unexplained).length) summary.flags.push("unexplained errors");
  if (exitedEarly) summary.flags.push("the runner exited before the end");
  if (loadgen.errors) summary.flags.push("loadgen counted errors");
  console.log(JSON.stringify(summary));
  if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(summary, null, 2) + "\n");
  return summary.flags.length ? 1 : 0;
}

Deno.exit(await main());
