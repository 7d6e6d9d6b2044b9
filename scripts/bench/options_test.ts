import { deepEqual, equal, throws } from "node:assert/strict";
import { parseOptions } from "./options.ts";
import { SCENARIOS } from "./scenarios.ts";

const ROOT = "/home/x/project";

Deno.test("defaults: every scenario and runner, 1 to 64 connections, 3 runs of 5 s, the shared Go runner", () => {
  const options = parseOptions([], ROOT);
  deepEqual(options.scenarios.map((s) => s.name), SCENARIOS.map((s) => s.name));
  deepEqual(options.runners, ["ceiling", "go", "floor", "process", "inline"]);
  deepEqual(options.conns, [1, 4, 16, 64]);
  equal(options.durationS, 5);
  equal(options.warmupS, 1);
  equal(options.runs, 3);
  equal(options.goRunner, "/home/x/shared/tools/peers/go-runner");
  equal(options.out, "/home/x/project/docs/benchmarks");
  equal(options.label, undefined);
});

Deno.test("--quick is a short say-only run, labelled as such; later options override it", () => {
  const quick = parseOptions(["--quick"], ROOT);
  deepEqual(quick.scenarios.map((s) => s.name), ["say"]);
  equal(quick.runs, 1);
  equal(quick.durationS, 2);
  equal(quick.label, "Short run (1 × 2 s per figure): for trying the tool, not a result");
  const narrowed = parseOptions(["--quick", "--conns", "1,64", "--scenarios", "say,chain3"], ROOT);
  deepEqual(narrowed.conns, [1, 64]);
  deepEqual(narrowed.scenarios.map((s) => s.name), ["say", "chain3"]);
  equal(parseOptions(["--quick", "--label", "mine"], ROOT).label, "mine");
});

Deno.test("--peer go=PATH picks the Go runner; bad values are refused", () => {
  equal(parseOptions(["--peer", "go=/opt/go-runner"], ROOT).goRunner, "/opt/go-runner");
  throws(() => parseOptions(["--peer", "java=/x"], ROOT), /go=PATH/);
  throws(() => parseOptions(["--runners", "go,rust"], ROOT), /unknown runner "rust"/);
  throws(() => parseOptions(["--scenarios", "nope"], ROOT), /unknown scenario "nope"/);
  throws(() => parseOptions(["--conns", "1,x"], ROOT), /--conns/);
  throws(() => parseOptions(["--runs", "1.5"], ROOT), /whole number/);
  throws(() => parseOptions(["--isolations", "inline"], ROOT));
  equal(parseOptions(["--warmup", "0"], ROOT).warmupS, 0);
});
