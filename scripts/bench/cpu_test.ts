import { equal } from "node:assert/strict";
import {
  cpuMicrosPerCall,
  parseStatLines,
  parseStatusWalk,
  sampleTree,
  ticksBetween,
  treeMemory,
} from "./cpu.ts";

Deno.test("stat lines are parsed after the command name, whatever it holds", () => {
  const rest = (utime: number, stime: number) =>
    `S 1 1 1 0 -1 4194560 100 0 0 0 ${utime} ${stime} 0 0 20 0 1 0 100 1000 200`;
  const sample = parseStatLines(
    `12 (deno) ${rest(150, 50)}\n13 (a (b) c) ${rest(7, 3)}\n\ngarbage\n`,
  );
  equal(sample.get(12), 200);
  equal(sample.get(13), 10);
  equal(sample.size, 2);
});

Deno.test("ticks between samples count processes that started in between whole", () => {
  const before = new Map([[1, 100], [2, 50]]);
  const after = new Map([[1, 130], [2, 60], [3, 5]]);
  equal(ticksBetween(before, after), 45);
  equal(cpuMicrosPerCall(45, 9000), 50);
  equal(cpuMicrosPerCall(45, 0), 0);
});

Deno.test("the status walk splits the top process from its descendants", () => {
  const memory = parseStatusWalk(
    "pid 10\nVmRSS:\t  81920 kB\nRssAnon:\t 30720 kB\npid 11\nVmRSS:\t 10240 kB\n" +
      "RssAnon:\t 5120 kB\npid 12\nVmRSS:\t 20480 kB\n",
    10,
  );
  equal(memory.rssMb, 80);
  equal(memory.privateMb, 30);
  equal(memory.descendantsRssMb, 30);
});

Deno.test("a real process tree: a shell's busy child is sampled with it", async () => {
  // The child spins for a while; sampling must see both pids and never lose ticks.
  const shell = new Deno.Command("sh", {
    args: ["-c", "sh -c 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done' & wait"],
  }).spawn();
  try {
    let pids = 0;
    let previous = new Map<number, number>();
    for (let i = 0; i < 50 && pids < 2; i++) {
      const sample = await sampleTree(shell.pid);
      pids = sample.size;
      equal(ticksBetween(previous, sample) >= 0, true);
      previous = sample;
    }
    equal(pids >= 2, true, "the shell and its child");
    const memory = await treeMemory(shell.pid);
    equal(memory.rssMb > 0, true);
  } finally {
    try {
      shell.kill("SIGKILL");
    } catch { /* ended */ }
    await shell.status;
  }
});
