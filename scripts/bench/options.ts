/**
 * The command line of `deno task bench`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { CONTENDER_IDS, type ContenderId, parseContenders } from "./contenders.ts";
import { type Scenario, SCENARIOS, selectScenarios } from "./scenarios.ts";

/** The usage text (`--help`). */
export const USAGE = `Usage: deno task bench [options]

Measures this runner (sandboxed, inline, and the protocol-only floor) against the official Go
runner and the C++ ceiling: every contender is started once and driven in turn by the shared
load generator; each figure is the median of --runs windows. Writes OUT.md, OUT.json and OUT.svg.
A full run (216 steps) takes about 23 minutes.

  --scenarios LIST   ${SCENARIOS.map((s) => s.name).join(",")} (default: all)
  --runners LIST     ${CONTENDER_IDS.join(",")} (default: all): the C++ ceiling, the Go
                     runner, this runner as the protocol-only floor (say only), sandboxed
                     ("isolation": "process") and inline
  --conns LIST       connection counts (default 1,4,16,64)
  --duration S       measured window of each run, seconds (default 5)
  --warmup S         un-measured load before each window, seconds (default 1)
  --runs N           windows per contender, scenario and connection count (default 3)
  --quick            a one-minute try: say only, 1 run of 2 s after 0.5 s per step
                     (options given with it win: --quick --conns 1,64)
  --peer go=PATH     the Go runner executable (default ../shared/tools/peers/go-runner; the
                     Go column is skipped, with a note, when it does not exist)
  --loadgen DIR      a directory with built loadgen and ceiling (default: build into .bench/)
  --out PATH         output path without extension (default docs/benchmarks)
  --label TEXT       a warning shown on the chart and the document (a run shorter than 3 runs
                     of 5 s gets one anyway: short runs are for trying the tool, not results)
  -h, --help         this text

Progress goes to stderr: on a terminal one line updated in place (what runs, step n of N,
time spent and left); elsewhere one line per finished scenario.`;

/** Parsed options. */
export interface Options {
  scenarios: Scenario[];
  runners: ContenderId[];
  conns: number[];
  durationS: number;
  warmupS: number;
  runs: number;
  goRunner: string;
  loadgen: string | undefined;
  out: string;
  /** The warning for the chart and the document, if any. */
  label: string | undefined;
  help: boolean;
}

function positive(name: string, text: string, orZero = false): number {
  const value = Number(text);
  if (!(value > 0 || (orZero && value === 0))) {
    throw new Error(`--${name} wants a positive number, not "${text}"`);
  }
  return value;
}

/** Parses the command line; `root` is the project root (for the default paths). */
export function parseOptions(argv: readonly string[], root: string): Options {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      scenarios: { type: "string" },
      runners: { type: "string" },
      conns: { type: "string" },
      duration: { type: "string" },
      warmup: { type: "string" },
      runs: { type: "string" },
      quick: { type: "boolean" },
      peer: { type: "string", multiple: true },
      loadgen: { type: "string" },
      out: { type: "string" },
      label: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const quick = values.quick === true;
  let goRunner = join(root, "..", "shared", "tools", "peers", "go-runner");
  for (const peer of values.peer ?? []) {
    const match = /^go=(.+)$/.exec(peer);
    if (!match) throw new Error(`--peer wants go=PATH, not "${peer}"`);
    goRunner = match[1]!;
  }
  const durationS = positive("duration", values.duration ?? (quick ? "2" : "5"));
  const runs = positive("runs", values.runs ?? (quick ? "1" : "3"));
  if (!Number.isInteger(runs)) throw new Error(`--runs wants a whole number, not ${runs}`);
  const conns = (values.conns ?? "1,4,16,64").split(",").map((c) => positive("conns", c));
  const short = runs < 3 || durationS < 5
    ? `Short run (${runs} × ${durationS} s per figure): for trying the tool, not a result`
    : undefined;
  return {
    scenarios: selectScenarios(
      values.scenarios ?? (quick ? "say" : SCENARIOS.map((s) => s.name).join(",")),
    ),
    runners: parseContenders(values.runners ?? CONTENDER_IDS.join(",")),
    conns,
    durationS,
    warmupS: positive("warmup", values.warmup ?? (quick ? "0.5" : "1"), true),
    runs,
    goRunner,
    loadgen: values.loadgen,
    out: values.out ?? join(root, "docs", "benchmarks"),
    label: values.label ?? short,
    help: values.help === true,
  };
}
