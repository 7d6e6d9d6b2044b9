import { equal } from "node:assert/strict";
import {
  formatDuration,
  formatProgressLine,
  formatScenarioDone,
  Progress,
  type ProgressSink,
} from "./progress.ts";
import { buildPlan } from "./plan.ts";
import { selectScenarios } from "./scenarios.ts";

// Go has no rewrite-var: say has 4 steps, rewrite-var 2.
const plan = buildPlan({
  scenarios: selectScenarios("say,rewrite-var"),
  contenders: ["go", "inline"],
  conns: [1, 16],
  runs: 1,
});

/** A sink that records what it is given; the clock is advanced by hand. */
function recorder(terminal: boolean) {
  const writes: string[] = [];
  const sink: ProgressSink = {
    isTerminal: () => terminal,
    columns: () => 200,
    write: (text) => void writes.push(text),
  };
  return { writes, sink };
}

Deno.test("durations read as seconds, minutes and seconds, or hours and minutes", () => {
  equal(formatDuration(9_400), "9s");
  equal(formatDuration(75_000), "1m15s");
  equal(formatDuration(3_725_000), "1h02m");
  equal(formatDuration(-5), "0s");
});

Deno.test("the progress line says what runs, n of N, time spent and left", () => {
  const state = { step: plan[4]!, index: 5, total: 60, elapsedMs: 65_000, leftMs: 600_000 };
  equal(
    formatProgressLine(state, 200),
    "bench [ 5/60] rewrite-var · Deno, inline · 1 conn · run 1/1 · 1m05s elapsed · ~10m00s left",
  );
  const cut = formatProgressLine(state, 30);
  equal(cut.length, 30);
  equal(cut.endsWith("…"), true);
  equal(
    formatScenarioDone("say", 6, 12, 61_000, 60_000),
    "bench: say done (6/12 steps, 1m01s elapsed, ~1m00s left)",
  );
});

Deno.test("on a terminal one line is rewritten in place, notes go above it, and it is cleared at the end", () => {
  let now = 0;
  const { writes, sink } = recorder(true);
  const progress = new Progress(plan, 10_000, sink, () => now, 0);
  progress.start(0);
  equal(
    writes.at(-1),
    `\r\x1b[2K${
      formatProgressLine({
        step: plan[0]!,
        index: 1,
        total: plan.length,
        elapsedMs: 0,
        leftMs: 60_000,
      }, 200)
    }`,
  );
  now = 4_000;
  progress.finish(0);
  progress.start(1);
  // One step took 4 s, so five remain at 4 s each.
  equal(writes.at(-1)!.endsWith("· 4s elapsed · ~20s left"), true);
  progress.note("a warning");
  equal(writes.at(-1)!.startsWith("\r\x1b[2Ka warning\n"), true);
  equal(writes.at(-1)!.endsWith("~20s left"), true, "the line is redrawn under the note");
  progress.end();
  equal(writes.at(-1), "\r\x1b[2K");
  equal(writes.every((w) => !w.includes("done (")), true, "no per-scenario lines on a terminal");
});

Deno.test("off a terminal there is one line per finished scenario and nothing per step", () => {
  let now = 0;
  const { writes, sink } = recorder(false);
  const progress = new Progress(plan, 10_000, sink, () => now, 0);
  progress.announce(2);
  equal(
    writes.shift(),
    "bench: 6 steps (a warm-up and a window each) over 2 runners, about 1m00s\n",
  );
  for (let i = 0; i < plan.length; i++) {
    progress.start(i);
    now += 2_000;
    progress.finish(i);
  }
  progress.end();
  equal(writes.length, 2);
  equal(writes[0], "bench: say done (4/6 steps, 8s elapsed, ~4s left)\n");
  equal(writes[1], "bench: rewrite-var done (6/6 steps, 12s elapsed, ~0s left)\n");
});
