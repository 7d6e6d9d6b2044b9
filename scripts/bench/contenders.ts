/**
 * The contenders a benchmark run compares, and which scenarios each of them runs. What each one
 * is, not how it is started (that is `launch.ts`).
 *
 * @module
 */
import type { Scenario } from "./scenarios.ts";

/** Every contender, in the order tables list them. */
export const CONTENDER_IDS = ["ceiling", "go", "floor", "process", "inline"] as const;

/** One contender. */
export type ContenderId = typeof CONTENDER_IDS[number];

/** How tables, the chart and the progress line name each contender. */
export const CONTENDER_LABELS: Readonly<Record<ContenderId, string>> = {
  ceiling: "C++ ceiling",
  go: "Go runner",
  floor: "Deno, protocol floor",
  process: "Deno, sandboxed",
  inline: "Deno, inline",
};

/** What each contender is, for the document's legend. */
export const CONTENDER_DESCRIPTIONS: Readonly<Record<ContenderId, string>> = {
  ceiling: "the shared C++ server that answers with pre-encoded replies: the least work any " +
    "runner can do on this machine (it runs with the first scenario of each phase; the others " +
    "of that phase are set against those numbers)",
  go: "the official Apache APISIX Go plugin runner, unmodified, in `prod` mode as deployed",
  floor: "this runner with `A6_BENCH_FLOOR=1`: it answers every call itself, no plugin, no " +
    "sandbox (what the protocol code alone costs; `say` only)",
  process: 'this runner, each plugin in its own sandbox process (`"isolation": "process"`, the ' +
    "default)",
  inline: 'this runner, plugins on the runner\'s own event loop (`"isolation": "inline"`)',
};

/** Parses a comma-separated contender list; throws on an unknown name. */
export function parseContenders(list: string): ContenderId[] {
  return list.split(",").filter(Boolean).map((name) => {
    if (!(CONTENDER_IDS as readonly string[]).includes(name)) {
      throw new Error(`unknown runner "${name}" (known: ${CONTENDER_IDS.join(", ")})`);
    }
    return name as ContenderId;
  });
}

/**
 * Whether `id` runs `scenario`, given every scenario selected for the run (the ceiling runs once
 * per phase, with the first selected scenario of that phase).
 */
export function runs(id: ContenderId, scenario: Scenario, selected: readonly Scenario[]): boolean {
  switch (id) {
    case "ceiling":
      return selected.find((s) => s.mode === scenario.mode) === scenario;
    case "go":
      return "confs" in scenario.go;
    case "floor":
      return scenario.floor;
    case "process":
    case "inline":
      return true;
  }
}

/** The loadgen `--conf` entries `id` gets for `scenario`. */
export function confsFor(id: ContenderId, scenario: Scenario): string[] {
  if (id === "go") {
    if (!("confs" in scenario.go)) throw new Error(`the Go runner cannot run ${scenario.name}`);
    return scenario.go.confs;
  }
  return scenario.confs;
}
