import { deepEqual as assertEquals } from "node:assert/strict";
import { buildPlan, estimateLeftMs, stepSeconds } from "./plan.ts";
import { SCENARIOS, selectScenarios } from "./scenarios.ts";
import { CONTENDER_IDS } from "./contenders.ts";

Deno.test("each run of a scenario and connection count drives every contender once, starting with the next one", () => {
  const plan = buildPlan({
    scenarios: selectScenarios("say"),
    contenders: ["go", "process", "inline"],
    conns: [1, 4],
    runs: 3,
  });
  const line = plan.map((s) => `${s.conns}:${s.run}:${s.contender}`);
  assertEquals(line, [
    "1:1:go",
    "1:1:process",
    "1:1:inline",
    "1:2:process",
    "1:2:inline",
    "1:2:go",
    "1:3:inline",
    "1:3:go",
    "1:3:process",
    "4:1:go",
    "4:1:process",
    "4:1:inline",
    "4:2:process",
    "4:2:inline",
    "4:2:go",
    "4:3:inline",
    "4:3:go",
    "4:3:process",
  ]);
  assertEquals(plan.every((s) => s.runs === 3), true);
});

Deno.test("the Go runner runs only scenarios it has a plugin for; the floor only say", () => {
  const plan = buildPlan({
    scenarios: SCENARIOS,
    contenders: [...CONTENDER_IDS],
    conns: [1],
    runs: 1,
  });
  const who = (scenario: string) =>
    plan.filter((s) => s.scenario.name === scenario).map((s) => s.contender);
  assertEquals(who("say"), ["ceiling", "go", "floor", "process", "inline"]);
  assertEquals(who("rewrite-var"), ["process", "inline"]);
  assertEquals(who("digest-1k"), ["process", "inline"]);
  assertEquals(who("resp-rewrite"), ["ceiling", "go", "process", "inline"]);
  assertEquals(who("limit-req"), ["go", "process", "inline"]);
  assertEquals(who("chain3"), ["process", "inline"]);
});

Deno.test("the ceiling runs with the first selected scenario of each phase", () => {
  const plan = buildPlan({
    scenarios: selectScenarios("chain3,rewrite-var,resp-rewrite"),
    contenders: ["ceiling", "process"],
    conns: [16],
    runs: 1,
  });
  assertEquals(plan.map((s) => `${s.scenario.name}:${s.contender}`), [
    "chain3:ceiling",
    "chain3:process",
    "rewrite-var:process",
    "resp-rewrite:ceiling",
    "resp-rewrite:process",
  ]);
});

Deno.test("the estimate uses the planned pace until a step has finished, then the measured one", () => {
  assertEquals(stepSeconds(1, 5), 6.25);
  assertEquals(estimateLeftMs(0, 10, 0, 6000), 60_000);
  assertEquals(estimateLeftMs(2, 10, 16_000, 6000), 64_000);
  assertEquals(estimateLeftMs(10, 10, 70_000, 6000), 0);
});
