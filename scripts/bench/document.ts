/**
 * The benchmark document (`docs/benchmarks.md`): how the run was made, how to read it, the
 * chart, a table per scenario and the memory table.
 *
 * @module
 */
import { CONTENDER_DESCRIPTIONS, CONTENDER_IDS, CONTENDER_LABELS } from "./contenders.ts";
import type { Row } from "./results.ts";
import type { Scenario } from "./scenarios.ts";
import { goMissing, memoryTable, scenarioTable } from "./table.ts";
import type { ContenderId } from "./contenders.ts";
import type { TreeMemory } from "./cpu.ts";

/** How and where a run was made. */
export interface RunMeta {
  date: string;
  deno: string;
  cpus: number;
  durationS: number;
  warmupS: number;
  runs: number;
  /** Load averages (1, 5, 15 min) before and after. */
  loadBefore: string;
  loadAfter: string;
  /** Contenders that were measured. */
  measured: ContenderId[];
  /** Why a requested contender was not measured (e.g. the Go runner's executable is missing). */
  skipped: string[];
  /** Problems seen during the run (e.g. a runner refused a conf), shown first. */
  warnings: string[];
  /** A warning (e.g. a short run), shown first. */
  label?: string | undefined;
  /** File name of the chart, next to the document. */
  chart: string;
}

/**
 * How to read the tables and the chart. Part of every generated document, so that a new run
 * does not lose it.
 */
export const HOW_TO_READ = `## How to read this

The load generator plays APISIX: each connection prepares a conf once, then sends one call at a
time and waits for its answer (a closed loop). So at 1 connection calls/s is one over the time a
call takes, and with more connections it is how many calls the runner can answer at once, until
the machine runs out of CPU (the load generator runs on the same machine and takes up to a core
of it).

- **calls/s**: calls answered per second, all connections together. Higher is better.
- **× Go**: calls/s over the official Go runner's in the same scenario at the same connection
  count. 1.25× means a quarter more calls per second than Go; 0.80× a fifth fewer. "n/a" where the
  Go runner has no equivalent plugin.
- **× ceiling**: calls/s over the C++ ceiling's, the least work any runner can do on this machine
  (pre-encoded answers, no plugin). It says how much of the machine's headroom a runner leaves;
  absolute calls/s drift between machines and runs, this ratio much less.
- **CPU µs/call**: CPU time (user + system) of the runner's whole process tree — for this runner
  the runner and all its sandbox processes — over the window, divided by the calls answered.
  Lower is better: at 10 µs per call one core answers 100,000 calls/s. It falls as connections
  rise, since one wake-up of the runner then serves several calls.
- **p50 / p99 µs**: latency of half and of 99 % of the calls, from the load generator writing the
  call to reading the final answer (ExtraInfo round trips included). In a closed loop latency and
  calls/s are tied: mean latency ≈ connections ÷ calls/s.
- **errors**: error frames, undecodable or mismatched answers and lost connections, summed over
  the runs. Anything but 0 makes the row worthless.

Every contender is started once and they take turns: for each scenario and connection count,
run 1 drives each contender once (a warm-up, then the measured window), run 2 again starting with
the next one, and so on, so a slower moment of the machine does not land on one contender. Each
figure is the median of the runs. The ratios compare figures of the same run only.

The chart shows \`say\` (the least a plugin can do, and the scenario every runner has): calls/s
against connections, one line per runner and isolation. The x axis is logarithmic (connections
grow by factors). The y axis is linear from zero when the slowest and fastest figures are within
20× of each other, so a line twice as high is twice as fast; when they are further apart it is
logarithmic (its label says so), so equal vertical distances are equal ratios and the gap between
two lines reads as "× Go" does, whatever the absolute numbers. Dashed lines are references rather
than runners: the ceiling, and the protocol floor (this runner with no plugin at all). The gap
between the floor and the sandboxed and inline lines is what running a plugin costs (in a sandbox process, or inline on the runner's loop);
the gap between the floor and the ceiling is the protocol code's own.
`;

/** The whole document. */
export function renderDocument(
  meta: RunMeta,
  scenarios: readonly Scenario[],
  rows: readonly Row[],
  memory: ReadonlyMap<ContenderId, TreeMemory>,
): string {
  const parts = ["# Benchmarks"];
  if (meta.label) parts.push(`> **${meta.label}.**`);
  for (const warning of meta.warnings) parts.push(`> **Warning**: ${warning}`);
  parts.push(
    `Measured ${meta.date} with Deno ${meta.deno} on ${meta.cpus} CPUs by \`deno task bench\`: ` +
      `medians of ${meta.runs} run${meta.runs === 1 ? "" : "s"} of ${meta.durationS} s, each ` +
      `after a ${meta.warmupS} s warm-up, driven by \`../shared/tools/loadgen\`. Load average ` +
      `before and after: ${meta.loadBefore} / ${meta.loadAfter} (the benchmark itself adds about ` +
      "1.5; more than that means something else was running)." +
      (meta.skipped.length ? ` Not measured: ${meta.skipped.join("; ")}.` : ""),
  );
  if (rows.some((r) => r.scenario === "say")) {
    parts.push(`![say: calls/s by connections, per runner](${meta.chart})`);
  }
  parts.push(HOW_TO_READ.trim());
  parts.push(
    "## Runners\n\n" +
      CONTENDER_IDS.filter((id) => meta.measured.includes(id))
        .map((id) => `- **${CONTENDER_LABELS[id]}**: ${CONTENDER_DESCRIPTIONS[id]}.`)
        .join("\n"),
  );
  parts.push("## Results");
  const goRan = meta.measured.includes("go");
  for (const scenario of scenarios) {
    const na = goMissing(scenario, goRan);
    const goConf = "confs" in scenario.go && goRan
      ? ` The Go runner gets ${scenario.go.confs.map((c) => `\`${c}\``).join(", ")}.`
      : "";
    parts.push(
      `### ${scenario.name}\n\n${scenario.description}.${goConf}${na ? ` × Go: ${na}.` : ""}\n\n${
        scenarioTable(scenario, rows, goRan)
      }`,
    );
  }
  parts.push(
    "## Memory\n\nResident memory of each runner at the end of the run, with every scenario's " +
      "plugins loaded. RSS counts the pages of an executable the process has touched (for Deno " +
      "about 45 MB shared by every Deno process); own memory is `RssAnon` (heap, stacks, buffers). " +
      "Child processes are this runner's sandboxes.\n\n" + memoryTable(memory),
  );
  return parts.join("\n\n") + "\n";
}
