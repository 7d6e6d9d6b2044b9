/**
 * Starts a runner for the long scripts (soak, fuzz) as `deno task start` does, with the same
 * flags, but from `scripts/soak_runner.ts`: on a shared machine other sessions clean up with
 * `pkill -f "main.ts run"`, which would otherwise stop a 10-minute run halfway.
 *
 * @module
 */
import { ROOT, startFlags, waitForSocket } from "../tests/support/runner.ts";

/** A runner started by {@linkcode startRunnerUnderOwnName}. */
export interface OwnRunner {
  socket: string;
  process: Deno.ChildProcess;
  /** Every log line so far (stdout and stderr). */
  lines: string[];
  /** Sends SIGTERM and waits for the exit. */
  stop(): Promise<{ status: Deno.CommandStatus; ms: number }>;
}

/** Starts a runner with `config` and extra environment variables; resolves once it listens. */
export async function startRunnerUnderOwnName(
  config: unknown,
  env: Record<string, string> = {},
): Promise<OwnRunner> {
  const dir = await Deno.makeTempDir({ prefix: "a6-long-" });
  const socket = `${dir}/runner.sock`;
  await Deno.writeTextFile(`${dir}/runner.json`, JSON.stringify(config));
  const process = new Deno.Command(Deno.execPath(), {
    args: [
      ...await startFlags(),
      `${ROOT}/scripts/soak_runner.ts`,
      "run",
      "--config",
      `${dir}/runner.json`,
    ],
    cwd: ROOT,
    env: { APISIX_LISTEN_ADDRESS: `unix:${socket}`, NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    let partial = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop()!;
      lines.push(...parts);
    }
  };
  const outputs = Promise.all([collect(process.stdout), collect(process.stderr)]);
  try {
    await waitForSocket(socket);
  } catch (error) {
    process.kill("SIGKILL");
    await process.status;
    throw new Error(`${(error as Error).message}\n${lines.join("\n")}`);
  }
  return {
    socket,
    process,
    lines,
    async stop() {
      const started = performance.now();
      try {
        process.kill("SIGTERM");
      } catch {
        // Already exited.
      }
      const status = await process.status;
      const ms = performance.now() - started;
      await outputs;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      return { status, ms };
    },
  };
}
