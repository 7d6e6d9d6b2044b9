/**
 * Starting and stopping the contenders: this runner (sandboxed, inline, or as the protocol
 * floor), the Go runner and the C++ ceiling. Each is started once per benchmark run and serves
 * every scenario it takes part in.
 *
 * @module
 */
import { join } from "node:path";
import { waitForSocket } from "../../tests/support/runner.ts";
import { startRunnerUnderOwnName } from "../start_runner.ts";
import type { ContenderId } from "./contenders.ts";
import type { Scenario } from "./scenarios.ts";

/** A started contender. */
export interface Running {
  id: ContenderId;
  pid: number;
  /** Its socket path (without `unix:`). */
  socket: string;
  /** The last lines it logged, to show when calls failed. */
  logTail(): string;
  /**
   * Log lines saying a conf was refused (at most a few): a runner that refuses a conf skips
   * the plugin and answers "no change", which would be measured as a very fast plugin.
   */
  refusals(): string[];
  /** Stops it (SIGTERM) and waits for the exit. */
  stop(): Promise<void>;
}

/** Where the executables are. */
export interface LaunchPaths {
  /** Directory with the built `ceiling`. */
  loadgenDir: string;
  /** The Go runner's executable. */
  goRunner: string;
}

/** Plugin names used by the scenarios' confs (`name={...}`). */
export function pluginNames(scenarios: readonly Scenario[]): string[] {
  const names = new Set<string>();
  for (const scenario of scenarios) {
    for (const conf of scenario.confs) names.add(conf.slice(0, conf.indexOf("=")));
  }
  return [...names];
}

const LOG_TAIL_LINES = 40;
const MAX_REFUSALS = 5;

/** Whether a log line says a plugin conf was refused (this runner's and the Go runner's words). */
export function isRefusal(line: string): boolean {
  return /conf rejected|failed to parse conf|parse conf failed/i.test(line);
}

/** The last lines of `<dir>/logs/runner.log` (where the Go runner logs), if there is one. */
function logFileTail(dir: string): string[] {
  try {
    return Deno.readTextFileSync(join(dir, "logs", "runner.log")).split("\n").filter(Boolean)
      .slice(-LOG_TAIL_LINES);
  } catch {
    return [];
  }
}

/** Starts an executable that listens on `APISIX_LISTEN_ADDRESS`, keeping its last log lines. */
async function startExecutable(
  id: ContenderId,
  path: string,
  args: string[],
): Promise<Running> {
  const dir = await Deno.makeTempDir({ prefix: `a6-bench-${id}-` });
  const socket = join(dir, `${id}.sock`);
  const child = new Deno.Command(path, {
    args,
    // The Go runner writes its log to ./logs/runner.log: keep it in the temporary directory.
    cwd: dir,
    env: { APISIX_LISTEN_ADDRESS: `unix:${socket}` },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const tail: string[] = [];
  const refusals: string[] = [];
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const lines = chunk.split("\n").filter(Boolean);
      tail.push(...lines);
      tail.splice(0, Math.max(0, tail.length - LOG_TAIL_LINES));
      refusals.push(...lines.filter(isRefusal).slice(0, MAX_REFUSALS - refusals.length));
    }
  };
  const outputs = Promise.all([collect(child.stdout), collect(child.stderr)]);
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    await child.status;
    await outputs;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await waitForSocket(socket);
  } catch (error) {
    await stop();
    throw new Error(`${id} did not start: ${(error as Error).message}\n${tail.join("\n")}`);
  }
  return {
    id,
    pid: child.pid,
    socket,
    logTail: () => [...tail, ...logFileTail(dir)].join("\n"),
    refusals: () => refusals,
    stop,
  };
}

/** Starts one contender, configured for every plugin the scenarios use. */
export async function launch(
  id: ContenderId,
  scenarios: readonly Scenario[],
  paths: LaunchPaths,
): Promise<Running> {
  switch (id) {
    case "ceiling":
      return await startExecutable(id, join(paths.loadgenDir, "ceiling"), []);
    case "go":
      // As its README says APISIX starts it; prod mode logs at warn level, as deployed.
      return await startExecutable(id, paths.goRunner, ["run", "-m", "prod"]);
    case "floor":
    case "process":
    case "inline": {
      const isolation = id === "process" ? "process" : "inline";
      const plugins = Object.fromEntries(pluginNames(scenarios).map((n) => [n, { isolation }]));
      const runner = await startRunnerUnderOwnName(
        { plugins },
        id === "floor" ? { A6_BENCH_FLOOR: "1" } : {},
      );
      return {
        id,
        pid: runner.process.pid,
        socket: runner.socket,
        logTail: () => runner.lines.slice(-LOG_TAIL_LINES).join("\n"),
        refusals: () => runner.lines.filter(isRefusal).slice(0, MAX_REFUSALS),
        stop: async () => {
          await runner.stop();
        },
      };
    }
  }
}
