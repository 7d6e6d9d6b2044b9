/**
 * Samples of the runner and its sandboxes: resident memory, open descriptors, CPU and load.
 *
 * @module
 */
import type { OwnRunner as RunningRunner } from "../start_runner.ts";

/** One process at one moment. */
export interface ProcessSample {
  pid: number;
  name: string;
  rssMb: number;
  fds: number;
}

/** The runner and each sandbox at one moment, with the machine's load. */
export interface Sample {
  at: number;
  runner: ProcessSample;
  sandboxes: ProcessSample[];
  loadavg: number;
  cpuBusyPct: number;
}

// ---- sampling --------------------------------------------------------------------------
// Deno reads nothing under /proc without --allow-all, so ps, ls and cat do it.

async function run(command: string, args: string[]): Promise<string> {
  const { stdout } = await new Deno.Command(command, { args, stderr: "null" }).output();
  return new TextDecoder().decode(stdout);
}

async function fdCount(pid: number): Promise<number> {
  return (await run("ls", [`/proc/${pid}/fd`])).split("\n").filter((name) => name !== "").length;
}

/** The runner and its children: pid, resident memory and command line. */
export async function processes(
  runner: number,
): Promise<Array<{ pid: number; rssMb: number; args: string }>> {
  const out = await run("ps", [
    "-o",
    "pid=,rss=,stat=,args=",
    "-p",
    String(runner),
    "--ppid",
    String(runner),
  ]);
  return out.split("\n").map((line) => line.trim().split(/\s+/)).filter((f) =>
    f.length >= 4 && f[2]![0] !== "Z"
  )
    .map((f) => ({ pid: Number(f[0]), rssMb: Number(f[1]) / 1024, args: f.slice(3).join(" ") }));
}

function sandboxName(args: string): string {
  const channel = args.split(" ").at(-1) ?? "";
  return channel.split("/").at(-1)?.replace(/-\d+\.sock$/, "").replace(/^plugin_/, "") ?? "?";
}

let lastCpu: { busy: number; total: number } | null = null;

/** The machine's busy share of CPU over a short window, in percent. */
export async function cpuBusyPct(): Promise<number> {
  const line = (await run("cat", ["/proc/stat"])).split("\n")[0] ?? "";
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (values[3] ?? 0) + (values[4] ?? 0);
  const total = values.reduce((a, b) => a + b, 0);
  const now = { busy: total - idle, total };
  const pct = lastCpu && now.total > lastCpu.total
    ? (100 * (now.busy - lastCpu.busy)) / (now.total - lastCpu.total)
    : 0;
  lastCpu = now;
  return pct;
}

/** The load averages and task counts, the line of /proc/loadavg. */
export async function loadavg(): Promise<string> {
  return (await run("cat", ["/proc/loadavg"])).trim();
}

/** Samples the runner and its sandboxes now. */
export async function sample(runner: RunningRunner): Promise<Sample> {
  const pid = runner.process.pid;
  const list = await processes(pid);
  const sandboxes: ProcessSample[] = [];
  let self: ProcessSample = { pid, name: "runner", rssMb: 0, fds: 0 };
  for (const p of list) {
    const fds = await fdCount(p.pid);
    if (p.pid === pid) self = { pid, name: "runner", rssMb: p.rssMb, fds };
    else sandboxes.push({ pid: p.pid, name: sandboxName(p.args), rssMb: p.rssMb, fds });
  }
  return {
    at: Date.now(),
    runner: self,
    sandboxes: sandboxes.sort((a, b) => a.name.localeCompare(b.name)),
    loadavg: Number((await loadavg()).split(" ")[0]),
    cpuBusyPct: await cpuBusyPct(),
  };
}
