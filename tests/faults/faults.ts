/**
 * Helpers of the fault suites: calls over a raw connection, the pids of a runner's sandboxes
 * (from its log), process and descriptor checks through /proc.
 *
 * @module
 */
import {
  decodeAsk,
  decodeReply,
  encodePrepareConf,
  encodeReqCall,
  type Entry,
  type Reply,
} from "../support/apisix.ts";
import { encodeExtraInfoResp } from "../support/apisix.ts";
import { pause, RawConn, rawFrame } from "../support/raw_conn.ts";
import type { RunningRunner } from "../support/runner.ts";

/** PrepareConf for one plugin; resolves to the token. */
export async function tokenFor(
  conn: RawConn,
  name: string,
  conf: unknown,
  key?: string,
): Promise<number> {
  const route = key ?? `route#faults-${crypto.randomUUID()}#ext-plugin-pre-req#1`;
  await conn.write(rawFrame(1, encodePrepareConf([[name, JSON.stringify(conf)]], route)));
  const reply = decodeReply(await conn.frame());
  if (reply.rpc !== 1) throw new Error(`PrepareConf failed: ${JSON.stringify(reply)}`);
  return reply.token;
}

/** An HTTPReqCall that answers every ExtraInfo question with `answer`; resolves to the reply. */
export async function reqCall(
  conn: RawConn,
  token: number,
  headers: Entry[] = [],
  answer: string | null = "v",
  timeoutMs = 15_000,
): Promise<Reply> {
  await conn.write(rawFrame(2, encodeReqCall({ token, headers })));
  for (;;) {
    const frame = await conn.frame(timeoutMs);
    if (frame.type !== 3) return decodeReply(frame);
    decodeAsk(frame.payload);
    await conn.write(rawFrame(3, encodeExtraInfoResp(answer)));
  }
}

/** The pid of the sandbox process running `plugin`, from the runner's latest "ready" line. */
export async function sandboxPid(
  runner: RunningRunner,
  plugin: string,
  after = 0,
): Promise<number> {
  const pattern = new RegExp(`sandbox plugin:${plugin} ready in \\d+ ms \\(pid (\\d+)\\)`);
  const deadline = Date.now() + 20_000;
  for (;;) {
    const lines = runner.lines.filter((line) => pattern.test(line));
    if (lines.length > after) return Number(pattern.exec(lines.at(-1)!)![1]);
    if (Date.now() > deadline) {
      throw new Error(`no sandbox for ${plugin}:\n${runner.lines.join("\n")}`);
    }
    await pause(20);
  }
}

/** Whether a process exists (and is not a zombie). */
export function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/**
 * Stops `pid` with SIGSTOP and waits until every one of its threads is stopped. The signal is
 * asynchronous: on a loaded machine a thread running on the other core goes on for a moment,
 * and a sandbox that still runs can answer what the test meant it to miss.
 */
export async function freeze(pid: number, ms = 5000): Promise<void> {
  Deno.kill(pid, "SIGSTOP");
  const deadline = Date.now() + ms;
  for (;;) {
    // Deno lets a test read /proc/<pid>/task only with --allow-all: `cat` reads the threads.
    const { stdout } = await new Deno.Command("sh", {
      args: ["-c", `cat /proc/${pid}/task/*/stat`],
    }).output();
    const states = new TextDecoder().decode(stdout).split("\n").filter((line) => line)
      .map((stat) => stat.slice(stat.lastIndexOf(")") + 2)[0]);
    if (states.length && states.every((state) => state === "T" || state === "t")) return;
    if (Date.now() > deadline) throw new Error(`${pid} did not stop: thread states ${states}`);
    await pause(1);
  }
}

/** Waits until `pid` is gone; false after `ms`. */
export async function gone(pid: number, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await pause(20);
  }
  return true;
}

/**
 * Open file descriptors of a process. Deno refuses to read /proc/<pid>/fd without
 * --allow-all, so `ls` lists it.
 */
export async function openFds(pid: number): Promise<number> {
  const { stdout, success } = await new Deno.Command("ls", { args: [`/proc/${pid}/fd`] }).output();
  if (!success) throw new Error(`cannot list the descriptors of ${pid}`);
  return new TextDecoder().decode(stdout).split("\n").filter((name) => name !== "").length;
}

/**
 * Keeps calling `say` and `echo` (reading the request body through ExtraInfo) on a connection
 * of its own until stopped, recording every failure: the "other plugins" whose calls must be
 * untouched.
 */
export class Bystander {
  calls = 0;
  failures: string[] = [];
  #stop = false;
  #done: Promise<void>;

  constructor(socket: string, tokens: { say: number; echo: number }) {
    this.#done = this.#run(socket, tokens);
  }

  async #run(socket: string, tokens: { say: number; echo: number }): Promise<void> {
    const conn = await RawConn.connect(socket);
    try {
      while (!this.#stop) {
        try {
          const say = await reqCall(conn, tokens.say);
          if (say.rpc !== 2 || say.action !== "stop") {
            throw new Error(`say: ${JSON.stringify(say)}`);
          }
          const echo = await reqCall(conn, tokens.echo, [], "body");
          if (echo.rpc !== 2 || echo.action !== "stop") {
            throw new Error(`echo: ${JSON.stringify(echo)}`);
          }
          this.calls += 2;
        } catch (error) {
          this.failures.push(String(error));
          return;
        }
        await pause(2);
      }
    } finally {
      conn.close();
    }
  }

  /** Stops the loop and resolves once it ended. */
  async stop(): Promise<void> {
    this.#stop = true;
    await this.#done;
  }
}
