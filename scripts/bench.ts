/**
 * `deno task bench`: measures this runner the way APISIX loads it, next to the official Go
 * runner and the C++ "ceiling" server (the least work a runner can do), in one run. See
 * `scripts/bench/options.ts` for the command line (`--help`) and `docs/benchmarks.md` for how to
 * read the results.
 *
 * Every contender is started once; the shared load generator (`../shared/tools/loadgen`, built
 * into `.bench/` with g++, flatc and the FlatBuffers headers) drives them in turn, step by step
 * as `scripts/bench/plan.ts` lays out. Writes `<out>.json`, `<out>.md` and `<out>.svg`.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { basename, dirname } from "node:path";
import { confsFor, CONTENDER_LABELS, type ContenderId } from "./bench/contenders.ts";
import {
  cpuMicrosPerCall,
  loadAverage,
  sampleTree,
  ticksBetween,
  type TreeMemory,
  treeMemory,
} from "./bench/cpu.ts";
import { renderChart } from "./bench/chart.ts";
import { renderDocument, type RunMeta } from "./bench/document.ts";
import { launch, type Running } from "./bench/launch.ts";
import { loadgenDir, runLoad } from "./bench/loadgen.ts";
import { parseOptions, USAGE } from "./bench/options.ts";
import { buildPlan, type Step, stepSeconds } from "./bench/plan.ts";
import { Progress } from "./bench/progress.ts";
import { type Sample, summarise } from "./bench/results.ts";
import { summaryTable } from "./bench/table.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

let options;
try {
  options = parseOptions(Deno.args, ROOT);
} catch (error) {
  console.error(`bench: ${(error as Error).message}\n\n${USAGE}`);
  Deno.exit(2);
}
if (options.help) {
  console.log(USAGE);
  Deno.exit(0);
}

const say = (message: string) => console.error(message);
const dir = await loadgenDir(ROOT, options.loadgen, say);

const skipped: string[] = [];
let wanted = options.runners;
if (wanted.includes("go")) {
  try {
    await Deno.stat(options.goRunner);
  } catch {
    skipped.push(
      `the Go runner (no executable at ${options.goRunner}; give one with --peer go=PATH)`,
    );
    wanted = wanted.filter((id) => id !== "go");
  }
}
for (const note of skipped) say(`bench: not measuring ${note}`);

const plan = buildPlan({
  scenarios: options.scenarios,
  contenders: wanted,
  conns: options.conns,
  runs: options.runs,
});
const measured = wanted.filter((id) => plan.some((step) => step.contender === id));

const running = new Map<ContenderId, Running>();
let stopping: Promise<unknown> | undefined;
const stopAll = () => stopping ??= Promise.all([...running.values()].map((r) => r.stop()));
let interrupted = false;
const onInterrupt = async () => {
  interrupted = true;
  say("\nbench: interrupted, stopping the runners");
  await stopAll();
  Deno.exit(130);
};
Deno.addSignalListener("SIGINT", onInterrupt);

/** A step, for messages. */
const where = (step: Step) =>
  `${step.scenario.name}, ${
    CONTENDER_LABELS[step.contender]
  }, ${step.conns} conns, run ${step.run}`;

const loadBefore = await loadAverage();
const samples: Sample[] = [];
const memory = new Map<ContenderId, TreeMemory>();
const warnings: string[] = [];
try {
  for (const id of measured) {
    running.set(
      id,
      await launch(id, options.scenarios, { loadgenDir: dir, goRunner: options.goRunner }),
    );
  }
  const progress = new Progress(plan, stepSeconds(options.warmupS, options.durationS) * 1000);
  progress.announce(running.size);
  for (const [index, step] of plan.entries()) {
    progress.start(index);
    const contender = running.get(step.contender)!;
    const spec = {
      socket: contender.socket,
      conns: step.conns,
      mode: step.scenario.mode,
      confs: confsFor(step.contender, step.scenario),
      bodySize: step.scenario.bodySize,
    };
    try {
      if (options.warmupS > 0) await runLoad(dir, { ...spec, seconds: options.warmupS });
      const before = await sampleTree(contender.pid);
      const result = await runLoad(dir, { ...spec, seconds: options.durationS });
      const after = await sampleTree(contender.pid);
      samples.push({
        scenario: step.scenario.name,
        contender: step.contender,
        conns: step.conns,
        rps: result.rps,
        p50_us: result.p50_us,
        p90_us: result.p90_us,
        p99_us: result.p99_us,
        cpu_us_per_call: cpuMicrosPerCall(ticksBetween(before, after), result.requests),
        errors: result.errors,
      });
      if (result.errors > 0) {
        progress.note(
          `bench: ${result.errors} errors: ${
            where(step)
          }; its last log lines:\n${contender.logTail()}`,
        );
      }
    } catch (error) {
      if (interrupted) throw error;
      // One failed window (a runner that died, a loadgen that could not connect) must not lose
      // the rest of a 20-minute run: it counts as a window with an error and nothing answered.
      samples.push({
        scenario: step.scenario.name,
        contender: step.contender,
        conns: step.conns,
        rps: 0,
        p50_us: 0,
        p90_us: 0,
        p99_us: 0,
        cpu_us_per_call: 0,
        errors: 1,
      });
      progress.note(
        `bench: ${where(step)} failed: ${
          (error as Error).message
        }\nits last log lines:\n${contender.logTail()}`,
      );
    }
    progress.finish(index);
  }
  progress.end();
  for (const [id, contender] of running) {
    memory.set(id, await treeMemory(contender.pid));
    for (const line of contender.refusals()) {
      warnings.push(
        `${CONTENDER_LABELS[id]} refused a conf, so its figures are not the plugin's: ${line}`,
      );
    }
  }
} catch (error) {
  // Ctrl-C also ends the loadgen of the running step; that failure is not news.
  if (interrupted) {
    await stopAll();
    Deno.exit(130);
  }
  throw error;
} finally {
  Deno.removeSignalListener("SIGINT", onInterrupt);
  await stopAll();
}

const rows = summarise(samples, options.scenarios);
const meta: RunMeta = {
  date: new Date().toISOString(),
  deno: Deno.version.deno,
  cpus: navigator.hardwareConcurrency,
  durationS: options.durationS,
  warmupS: options.warmupS,
  runs: options.runs,
  loadBefore,
  loadAfter: await loadAverage(),
  measured,
  skipped,
  warnings,
  label: options.label,
  chart: `${basename(options.out)}.svg`,
};
await Deno.mkdir(dirname(options.out), { recursive: true });
await Deno.writeTextFile(
  `${options.out}.json`,
  JSON.stringify({ meta, rows, samples }, null, 2) + "\n",
);
const sayRows = rows.filter((r) => r.scenario === "say");
if (sayRows.length) {
  await Deno.writeTextFile(
    `${options.out}.svg`,
    renderChart(sayRows, {
      title: "say: calls/s by connections",
      subtitle: `${
        meta.date.slice(0, 10)
      }, Deno ${meta.deno}, ${meta.cpus} CPUs, medians of ${meta.runs} × ${meta.durationS} s; higher is better`,
      ...(meta.label ? { warning: meta.label } : {}),
    }),
  );
}
await Deno.writeTextFile(
  `${options.out}.md`,
  renderDocument(meta, options.scenarios, rows, memory),
);
// Formatted as `deno task check` wants them, so a new run can be committed as it is.
await new Deno.Command(Deno.execPath(), {
  args: ["fmt", "--quiet", `${options.out}.md`, ...sayRows.length ? [`${options.out}.svg`] : []],
}).output();

if (sayRows.length) console.log(summaryTable("say", rows) + "\n");
for (const warning of warnings) say(`bench: WARNING: ${warning}`);
console.log(
  `Wrote ${options.out}.md, .json${sayRows.length ? " and .svg" : ""}` +
    (rows.some((r) => r.errors > 0) ? " (WITH ERRORS: see the errors column)" : ""),
);
