/**
 * Starts the real runner as a child process (`deno run … main.ts run`, the same flags as
 * `deno task start`) on a fresh socket, for tests that talk to it the way APISIX does.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** The project root. */
export const ROOT: string = fileURLToPath(new URL("../../", import.meta.url));

/** Permission flags of `deno task start`, read from deno.json so tests run what users run. */
export async function startFlags(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
  const words = (config.tasks.start as string).split(/\s+/);
  return words.slice(words.indexOf("run") + 1, words.indexOf("main.ts"));
}

/** Options of {@linkcode startRunner}. */
export interface RunnerOptions {
  /** A configuration object, written to a temporary file and passed with `--config`. */
  config?: unknown;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Extra arguments after `run`. */
  args?: string[];
  /** Use this socket path instead of a fresh one. */
  socket?: string;
  /** Give the runner a pipe as stdin, as APISIX does (close it to play "parent gone"). */
  stdinPipe?: boolean;
  /** Subcommand (default "run"). */
  command?: string;
  /** Run the project copied to this directory instead of the project itself. */
  root?: string;
}

/** A runner started by a test. */
export interface RunningRunner {
  /** The socket path (without `unix:`). */
  socket: string;
  /** The child process. */
  process: Deno.ChildProcess;
  /** Every log line so far (stdout and stderr). */
  lines: string[];
  /** Resolves to the first log line matching `pattern` (rejects after `timeoutMs`). */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends SIGTERM and waits for the exit; returns the status and how long it took. */
  stop(): Promise<{ status: Deno.CommandStatus; ms: number }>;
  /** The temporary directory holding the socket and the config. */
  dir: string;
}

/** Waits until `path` accepts a connection. */
export async function waitForSocket(path: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const conn = await Deno.connect({ transport: "unix", path });
      conn.close();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`runner did not listen on ${path}: ${error}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

/** Starts a runner and waits until it listens. */
export async function startRunner(options: RunnerOptions = {}): Promise<RunningRunner> {
  const dir = await Deno.makeTempDir({ prefix: "a6-test-" });
  const socket = options.socket ?? `${dir}/runner.sock`;
  const root = options.root ?? ROOT;
  const args = [...await startFlags(), `${root}/main.ts`, options.command ?? "run"];
  if (options.config !== undefined) {
    const file = `${dir}/runner.json`;
    await Deno.writeTextFile(file, JSON.stringify(options.config, null, 2));
    args.push("--config", file);
  }
  args.push(...options.args ?? []);
  const process = new Deno.Command(Deno.execPath(), {
    args,
    cwd: root,
    env: { APISIX_LISTEN_ADDRESS: `unix:${socket}`, NO_COLOR: "1", ...options.env },
    stdin: options.stdinPipe ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const waiters: Array<{ pattern: RegExp; resolve(line: string): void }> = [];
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    let partial = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        for (const waiter of [...waiters]) {
          if (waiter.pattern.test(line)) {
            waiters.splice(waiters.indexOf(waiter), 1);
            waiter.resolve(line);
          }
        }
      }
    }
  };
  const outputs = Promise.all([collect(process.stdout), collect(process.stderr)]);
  const runner: RunningRunner = {
    socket,
    process,
    lines,
    dir,
    waitForLine(pattern, timeoutMs = 20_000) {
      const found = lines.find((line) => pattern.test(line));
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.findIndex((w) => w.pattern === pattern), 1);
          reject(
            new Error(
              `no log line matched ${pattern} within ${timeoutMs} ms:\n${lines.join("\n")}`,
            ),
          );
        }, timeoutMs);
        waiters.push({
          pattern,
          resolve: (line) => {
            clearTimeout(timer);
            resolve(line);
          },
        });
      });
    },
    async stop() {
      const started = performance.now();
      try {
        process.kill("SIGTERM");
      } catch {
        // Already exited.
      }
      if (options.stdinPipe) await process.stdin.close().catch(() => {});
      const status = await process.status;
      const ms = performance.now() - started;
      await outputs;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      return { status, ms };
    },
  };
  try {
    await waitForSocket(socket);
  } catch (error) {
    try {
      process.kill("SIGKILL");
    } catch { /* gone */ }
    await process.status;
    await outputs;
    throw new Error(`${(error as Error).message}\n${lines.join("\n")}`);
  }
  return runner;
}

/** What {@linkcode runUntilExit} reports. */
export interface ExitReport {
  /** The exit code. */
  code: number;
  /** stdout and stderr together. */
  output: string;
}

/**
 * Runs the runner with exactly `env` (plus what Deno itself needs: PATH, HOME, DENO_DIR) and
 * waits for it to exit by itself, e.g. on a start-up error. Kills it after `timeoutMs`.
 */
export async function runUntilExit(options: {
  env: Record<string, string>;
  args?: string[];
  timeoutMs?: number;
}): Promise<ExitReport> {
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const name of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  const child = new Deno.Command(Deno.execPath(), {
    args: [...await startFlags(), `${ROOT}/main.ts`, "run", ...options.args ?? []],
    cwd: ROOT,
    env: { ...env, ...options.env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timeoutMs = options.timeoutMs ?? 20_000;
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, timeoutMs);
  try {
    const { code, signal, stdout, stderr } = await child.output();
    const decoder = new TextDecoder();
    const output = decoder.decode(stdout) + decoder.decode(stderr);
    if (signal === "SIGKILL") throw new Error(`the runner did not exit within ${timeoutMs} ms`);
    return { code, output };
  } finally {
    clearTimeout(timer);
  }
}

/** A runner shared by the tests of one file: started on first use, stopped by `stop()`. */
export interface SharedRunner {
  /** The runner, started on the first call. */
  get(): Promise<RunningRunner>;
  /**
   * Sends SIGTERM and waits for the exit; resolves to how it went (null if never started).
   * Throws unless the runner exited with code 0 within 1 s and logged no error.
   */
  stop(): Promise<{ status: Deno.CommandStatus; ms: number; lines: string[] } | null>;
}

/**
 * A runner shared by several tests (start-up costs a few hundred milliseconds). It gets a stdin
 * pipe, so it exits by itself when the test process ends without calling `stop()` (a filtered
 * run), and its temporary directory is removed then too. Tests that use it must turn off Deno's
 * op and resource sanitizers, since it outlives each of them.
 */
export function sharedRunner(options: RunnerOptions = {}): SharedRunner {
  let started: Promise<RunningRunner> | null = null;
  let dir: string | null = null;
  const onUnload = () => {
    if (dir) Deno.removeSync(dir, { recursive: true });
  };
  return {
    get() {
      started ??= startRunner({ stdinPipe: true, ...options }).then((runner) => {
        dir = runner.dir;
        globalThis.addEventListener("unload", onUnload);
        return runner;
      });
      return started;
    },
    async stop() {
      if (!started) return null;
      const runner = await started.catch(() => null);
      started = null;
      globalThis.removeEventListener("unload", onUnload);
      if (!runner) return null;
      const { status, ms } = await runner.stop();
      const errors = runner.lines.filter((line) => /level=(error|fatal)/.test(line));
      if (status.code !== 0 || ms >= 1000 || errors.length) {
        throw new Error(
          `the runner ended with code ${status.code} after ${Math.round(ms)} ms` +
            (errors.length ? `, logging:\n${errors.join("\n")}` : ""),
        );
      }
      return { status, ms, lines: runner.lines };
    },
  };
}
