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
 * This file is the command and its loop; the parts are in `soak/`: `mix.ts` (the routes and how
 * often failures are provoked), `client.ts` (one connection driving the mix and judging replies),
 * `sampling.ts` (memory, descriptors and load of the runner and its sandboxes), `stats.ts` (the
 * per-minute counts and the growth verdict) and `loadgen.ts` (the optional extra pressure).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { decodeReply, encodePrepareConf } from "../tests/support/apisix.ts";
import { pause, RawConn, rawFrame } from "../tests/support/raw_conn.ts";
import { startRunnerUnderOwnName } from "./start_runner.ts";
import { fixtureConfig } from "../tests/fixtures/soak/plugins.ts";
import {
  type Route,
  ROUTES,
  SAMPLE_MS,
  SLEEPY_TIMEOUT_MS,
  SLOW_CALL_EVERY_MS,
} from "./soak/mix.ts";
import { growth, mean, median, type Minute, newMinute, percentile, round } from "./soak/stats.ts";
import { loadavg, sample } from "./soak/sampling.ts";
import { Client } from "./soak/client.ts";
import { LOADGEN, runLoadgen } from "./soak/loadgen.ts";

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
