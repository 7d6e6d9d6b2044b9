/**
 * CPU time and memory of a process and all its descendants (a runner and its sandbox
 * processes), read from `/proc`.
 *
 * Deno 2.9 lets only `--allow-all` read another process's `/proc` files, so a shell reads them;
 * one shell per sample walks the whole tree, so sampling costs one process start.
 *
 * @module
 */

/** Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux). */
export const TICKS_PER_SECOND = 100;

/** CPU ticks (user + system) by pid. */
export type CpuSample = Map<number, number>;

/**
 * Parses `/proc/<pid>/stat` lines into user + system ticks per pid. The command name (in
 * parentheses) may hold spaces and parentheses, so fields are counted from the last `)`.
 */
export function parseStatLines(text: string): CpuSample {
  const sample: CpuSample = new Map();
  for (const line of text.split("\n")) {
    const close = line.lastIndexOf(")");
    if (close < 0) continue;
    const pid = Number(line.slice(0, line.indexOf(" ")));
    const fields = line.slice(close + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    if (Number.isInteger(pid) && Number.isFinite(ticks)) sample.set(pid, ticks);
  }
  return sample;
}

/**
 * Ticks spent between two samples of the same tree. A process in `after` that `before` lacks
 * (started in between) counts whole; one that ended in between is lost, as with any sampler.
 */
export function ticksBetween(before: CpuSample, after: CpuSample): number {
  let spent = 0;
  for (const [pid, ticks] of after) spent += ticks - (before.get(pid) ?? 0);
  return spent;
}

/** Microseconds of CPU per call from ticks spent and calls answered (0 when none were). */
export function cpuMicrosPerCall(ticks: number, calls: number): number {
  return calls > 0 ? (ticks / TICKS_PER_SECOND) * 1e6 / calls : 0;
}

// Prints the stat line of $1 and of every descendant, depth first.
const WALK =
  'walk() { cat /proc/$1/stat 2>/dev/null && echo; for c in $(cat /proc/$1/task/*/children 2>/dev/null); do walk $c; done; }; walk "$0"';

async function shell(script: string, arg: string): Promise<string> {
  const out = await new Deno.Command("sh", {
    args: ["-c", script, arg],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout);
}

/** CPU ticks of `pid` and all its descendants. */
export async function sampleTree(pid: number): Promise<CpuSample> {
  return parseStatLines(await shell(WALK, String(pid)));
}

/** Resident memory of a process tree, in MB. */
export interface TreeMemory {
  /** The top process's resident set. */
  rssMb: number;
  /** The top process's own memory (`RssAnon`: heap, stacks, buffers; no shared executable pages). */
  privateMb: number;
  /** Resident sets of all its descendants, summed. */
  descendantsRssMb: number;
}

const STATUS_WALK =
  'walk() { echo "pid $1"; grep -E "^(VmRSS|RssAnon):" /proc/$1/status 2>/dev/null; for c in $(cat /proc/$1/task/*/children 2>/dev/null); do walk $c; done; }; walk "$0"';

/** Parses the output of the status walk: `pid N` lines, each followed by its VmRSS and RssAnon. */
export function parseStatusWalk(text: string, top: number): TreeMemory {
  const memory: TreeMemory = { rssMb: 0, privateMb: 0, descendantsRssMb: 0 };
  let pid = 0;
  for (const line of text.split("\n")) {
    const match = /^(pid|VmRSS:|RssAnon:)\s+(\d+)/.exec(line);
    if (!match) continue;
    const value = Number(match[2]);
    if (match[1] === "pid") pid = value;
    else if (match[1] === "VmRSS:" && pid === top) memory.rssMb = value / 1024;
    else if (match[1] === "VmRSS:") memory.descendantsRssMb += value / 1024;
    else if (pid === top) memory.privateMb = value / 1024;
  }
  return memory;
}

/** Resident memory of `pid` and its descendants. */
export async function treeMemory(pid: number): Promise<TreeMemory> {
  return parseStatusWalk(await shell(STATUS_WALK, String(pid)), pid);
}

/** The 1, 5 and 15 minute load averages, as `/proc/loadavg` writes them. */
export async function loadAverage(): Promise<string> {
  return (await shell("cat /proc/loadavg", "")).split(" ").slice(0, 3).join(" ");
}
