/**
 * The benchmark's scenarios: what the load generator sends, and the conf each contender gets
 * for it (the Go runner only where it has an equivalent plugin).
 *
 * @module
 */

/** One workload, as `../shared/tools/loadgen` options. */
export interface Scenario {
  /** Short name used on the command line and in the tables. */
  name: string;
  /** One line saying what a call does. */
  description: string;
  /** loadgen `--conf` entries for this project's runner (and the floor and the ceiling). */
  confs: string[];
  /**
   * loadgen `--conf` entries for the Go runner, or why it has no equivalent (shown as "n/a").
   */
  go: { confs: string[] } | { missing: string };
  /** HTTPReqCall or HTTPRespCall. */
  mode: "req" | "resp";
  /** Bytes of body the loadgen answers an ExtraInfo body question with (0: a GET, no body). */
  bodySize: number;
  /**
   * The protocol-only floor (the runner answering every call itself, no plugin) is comparable
   * only with a plugin that does as little: `say`.
   */
  floor: boolean;
}

/** Every scenario, in the order they run and are reported. */
export const SCENARIOS: readonly Scenario[] = [
  {
    name: "say",
    description: "`say` answers with a Stop (the Go runner's `say` also adds one header)",
    confs: ['say={"body":"hello"}'],
    go: { confs: ['say={"body":"hello"}'] },
    mode: "req",
    bodySize: 0,
    floor: true,
  },
  {
    name: "rewrite-var",
    description:
      "`request-rewrite` sets a header from `$remote_addr` (one ExtraInfo round trip per call)",
    confs: ['request-rewrite={"headers":{"set":{"x-real-ip":"$remote_addr"}}}'],
    go: { missing: "the Go runner has no request-rewrite" },
    mode: "req",
    bodySize: 0,
    floor: false,
  },
  {
    name: "digest-1k",
    description: "`content-digest` over a 1 KiB request body (one ExtraInfo round trip per call)",
    confs: ["content-digest={}"],
    go: { missing: "the Go runner has no content-digest" },
    mode: "req",
    bodySize: 1024,
    floor: false,
  },
  {
    name: "resp-rewrite",
    description: "`response-rewrite` adds a header in the response phase",
    confs: ['response-rewrite={"headers":{"x-served-by":"deno"}}'],
    go: { confs: ['response-rewrite={"headers":{"x-served-by":"deno"}}'] },
    mode: "resp",
    bodySize: 0,
    floor: false,
  },
  {
    name: "limit-req",
    description: "`limit-req` with a rate it never reaches (the call goes on to the upstream)",
    confs: ['limit-req={"rate":1000000,"burst":1000000}'],
    go: { confs: ['limit-req={"rate":1000000,"burst":1000000}'] },
    mode: "req",
    bodySize: 0,
    floor: false,
  },
  {
    name: "chain3",
    description: "`request-rewrite` → `limit-req` → `say`",
    confs: [
      'request-rewrite={"headers":{"set":{"x-a":"1"}}}',
      'limit-req={"rate":1000000,"burst":1000000}',
      'say={"body":"hello"}',
    ],
    go: { missing: "the Go runner has no request-rewrite" },
    mode: "req",
    bodySize: 0,
    floor: false,
  },
];

/** The scenarios named in a comma-separated list, in the list's order; throws on an unknown name. */
export function selectScenarios(names: string): Scenario[] {
  return names.split(",").filter(Boolean).map((name) => {
    const scenario = SCENARIOS.find((s) => s.name === name);
    if (!scenario) {
      throw new Error(
        `unknown scenario "${name}" (known: ${SCENARIOS.map((s) => s.name).join(", ")})`,
      );
    }
    return scenario;
  });
}
