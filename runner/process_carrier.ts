/**
 * Runs a sandbox as a child process: the same program started in its sandbox role from
 * `Deno.execPath()`, connected to the runner over a private Unix socket that only it can open
 * (a fresh path per start, a secret handshake, the path unlinked at once), with a V8 heap limit
 * and a resident-memory watchdog, and killed with SIGKILL when it misbehaves.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ChannelReader, ChannelWriter, CONTROL_SLOT } from "../sandbox/channel.ts";
import type { SandboxEvent, SandboxInit } from "../sandbox/process_main.ts";
import { SECRET_ENV } from "../sandbox/process_main.ts";
import { moduleDirectory, type PermissionKind, type PluginSettings } from "./config.ts";
import { log } from "./log.ts";
import type { FailureCause } from "./plugin_host.ts";
import type { Carrier, Exit } from "./supervisor.ts";
import { workerPermissions } from "./worker_permissions.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const MAIN = join(ROOT, "main.ts");
const HANDSHAKE_TIMEOUT_MS = 10_000;
const RSS_POLL_MS = 250;
/** What a sandbox process needs beyond its plugins' heap: the Deno runtime of two isolates. */
const RUNTIME_OVERHEAD_MB = 96;

// The code a sandbox loads under `deno run`: its own modules and their npm dependencies.
const SANDBOX_CODE = ["main.ts", "mod.ts", "sandbox", "api", "protocol", "node_modules"]
  .map((name) => join(ROOT, name));

let privateDir: Promise<string> | null = null;
let spawned = 0;

/** The runner's private directory for sandbox channels (mode 0700), made once. */
function channelDirectory(): Promise<string> {
  privateDir ??= Deno.makeTempDir({ prefix: "a6-deno-runner-" });
  return privateDir;
}

/** Removes the private directory (at shutdown). */
export async function removeChannelDirectory(): Promise<void> {
  if (!privateDir) return;
  const dir = await privateDir;
  privateDir = null;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

function secretHex(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The union of a group's grants for one permission kind. */
function union(plugins: readonly PluginSettings[], kind: PermissionKind): string[] {
  return [...new Set(plugins.flatMap((p) => p.permissions[kind]))];
}

/** Command-line arguments that start a sandbox under `deno run`, granting only what it needs. */
export function sandboxRunArgs(
  plugins: readonly PluginSettings[],
  channel: string,
): string[] {
  const heapMb = Math.max(...plugins.map((p) => p.memoryMb));
  const read = [
    ...SANDBOX_CODE,
    ...plugins.map((p) => moduleDirectory(p.module)).filter((d): d is string => d !== null),
    ...union(plugins, "read"),
    channel,
  ];
  const flag = (name: string, list: string[]) =>
    list.length ? [`--allow-${name}=${list.join(",")}`] : [];
  return [
    "run",
    "--no-prompt",
    "--cached-only",
    `--config=${join(ROOT, "deno.json")}`,
    `--v8-flags=--max-old-space-size=${heapMb}`,
    ...flag("read", read),
    ...flag("write", [...union(plugins, "write"), channel]),
    ...flag("net", [...union(plugins, "net"), `unix:${channel}`]),
    ...flag("env", [...union(plugins, "env"), SECRET_ENV]),
    ...flag("sys", union(plugins, "sys")),
    ...flag("import", union(plugins, "import")),
    MAIN,
    "sandbox",
    channel,
  ];
}

/** Permission kinds a compiled sandbox drops entirely because none of its plugins has them. */
function revocations(plugins: readonly PluginSettings[]): Deno.PermissionName[] {
  const revoke: Deno.PermissionName[] = ["run", "ffi"];
  for (const kind of ["write", "net", "env", "sys"] as const) {
    if (union(plugins, kind).length === 0) revoke.push(kind);
  }
  return revoke;
}

function childEnv(plugins: readonly PluginSettings[], secret: string): Record<string, string> {
  const env: Record<string, string> = { [SECRET_ENV]: secret, NO_COLOR: "1" };
  // What Deno itself needs to find its cache, and what the plugins were granted.
  for (const name of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", ...union(plugins, "env")]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

function residentMb(pid: number): number | null {
  try {
    const statm = Deno.readTextFileSync(`/proc/${pid}/statm`);
    return (Number(statm.split(" ")[1]) * 4096) / (1024 * 1024);
  } catch {
    return null;
  }
}

async function pipeLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void) {
  const decoder = new TextDecoder();
  let partial = "";
  try {
    for await (const chunk of stream) {
      const lines = (partial + decoder.decode(chunk, { stream: true })).split("\n");
      partial = lines.pop()!;
      for (const line of lines) if (line.trim()) onLine(line);
    }
  } catch {
    // The process is gone.
  }
  if (partial.trim()) onLine(partial);
}

/** A carrier that runs the sandbox in a child process. */
export function processCarrier(
  key: string,
  plugins: readonly PluginSettings[],
  onBatch: (slot: number, batch: Uint8Array) => void,
): Carrier {
  let child: Deno.ChildProcess | null = null;
  let writer: ChannelWriter | null = null;
  let pid: number | null = null;
  let killed: Exit | null = null;
  let watchdog: ReturnType<typeof setInterval> | undefined;
  // Resident memory as the sandbox reports it (see RSS_REPORT_MS): without --allow-all, Deno
  // refuses to read /proc/<pid>, so residentMb() finds nothing.
  let reportedMb: number | null = null;
  const stderrTail: string[] = [];
  let resolveExit!: (exit: Exit) => void;
  const exited = new Promise<Exit>((resolve) => resolveExit = resolve);
  let ended = false;
  const memoryLimitMb = Math.max(...plugins.map((p) => p.memoryMb)) + RUNTIME_OVERHEAD_MB;

  const finish = (exit: Exit) => {
    if (ended) return;
    ended = true;
    clearInterval(watchdog);
    resolveExit(killed ?? exit);
  };

  const kill = (cause: FailureCause, message: string) => {
    killed ??= { cause, message };
    if (child) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    } else {
      finish(killed);
    }
  };

  const start = async () => {
    const dir = await channelDirectory();
    const channel = join(dir, `${key.replace(/[^A-Za-z0-9._-]/g, "_")}-${++spawned}.sock`);
    const secret = secretHex();
    const listener = Deno.listen({ transport: "unix", path: channel });
    try {
      const standalone = Deno.build.standalone;
      child = new Deno.Command(Deno.execPath(), {
        args: standalone ? ["sandbox", channel] : sandboxRunArgs(plugins, channel),
        env: childEnv(plugins, secret),
        clearEnv: true,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        cwd: dirname(channel),
      }).spawn();
      pid = child.pid;
      const sandboxLog = (line: string) => {
        stderrTail.push(line);
        if (stderrTail.length > 20) stderrTail.shift();
        log.sandbox.warn("sandbox {sandbox} says: {line}", { sandbox: key, line });
      };
      pipeLines(child.stdout, sandboxLog);
      pipeLines(child.stderr, sandboxLog);
      child.status.then((status) => {
        const tail = stderrTail.join("\n");
        const oom = status.signal === "SIGTRAP" || status.code === 133 ||
          /out of memory|heap limit/i.test(tail);
        finish({
          cause: oom ? "oom" : "crash",
          message: oom
            ? "the sandbox ran out of memory (V8 heap limit)"
            : `the sandbox exited (${
              status.signal ? `signal ${status.signal}` : `code ${status.code}`
            })`,
        });
      });

      const { conn, reader } = await acceptWithSecret(listener, secret, exited);
      writer = new ChannelWriter(conn);
      writer.onError = () => kill("crash", "the channel to the sandbox broke");
      const init: SandboxInit = {
        slots: plugins.map((settings) => ({
          name: settings.name,
          module: settings.module,
          permissions: workerPermissions(settings),
          logLinesPerSecond: settings.logLinesPerSecond,
        })),
        revoke: standalone ? revocations(plugins) : [],
      };
      writer.send(CONTROL_SLOT, new TextEncoder().encode(JSON.stringify(init)));
      readChannel(conn, reader);
      watchdog = setInterval(() => {
        const rss = (pid === null ? null : residentMb(pid)) ?? reportedMb;
        if (rss !== null && rss > memoryLimitMb) {
          kill("oom", `resident memory ${Math.round(rss)} MiB exceeded ${memoryLimitMb} MiB`);
        }
      }, RSS_POLL_MS);
      Deno.unrefTimer(watchdog);
    } finally {
      listener.close();
      await Deno.remove(channel).catch(() => {});
    }
  };

  const readChannel = async (conn: Deno.Conn, reader: ChannelReader) => {
    try {
      for (;;) {
        const frame = await reader.next();
        if (!frame) break;
        if (frame.slot === CONTROL_SLOT) {
          const event = JSON.parse(new TextDecoder().decode(frame.batch)) as SandboxEvent;
          if (event.event === "rss") {
            reportedMb = Number(event.bytes) / (1024 * 1024) || null;
            continue;
          }
          const name = plugins[event.slot]?.name ?? `slot ${event.slot}`;
          kill(
            event.event === "violation" ? "violation" : "crash",
            `plugin ${name}: ${event.message}`,
          );
        } else if (frame.slot < plugins.length) {
          onBatch(frame.slot, frame.batch);
        } else {
          kill("violation", `a batch from unknown slot ${frame.slot}`);
        }
      }
    } catch (error) {
      kill("violation", `the channel broke: ${(error as Error).message}`);
    }
    conn.close();
    kill("crash", "the sandbox closed its channel");
  };

  return {
    get pid() {
      return pid;
    },
    exited,
    start,
    send(slot, batch) {
      writer?.send(slot, batch);
    },
    kill,
  };
}

/** Accepts the sandbox's connection: the first one that presents the secret. */
async function acceptWithSecret(
  listener: Deno.Listener,
  secret: string,
  exited: Promise<Exit>,
): Promise<{ conn: Deno.Conn; reader: ChannelReader }> {
  const expected = new TextEncoder().encode(secret);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no connection within ${HANDSHAKE_TIMEOUT_MS} ms`)),
      HANDSHAKE_TIMEOUT_MS,
    );
  });
  const died = exited.then((exit) => {
    throw new Error(`it exited before connecting: ${exit.message}`);
  });
  try {
    for (;;) {
      const conn = await Promise.race([listener.accept(), deadline, died]);
      const reader = new ChannelReader(conn);
      const hello = await Promise.race([reader.next(), deadline, died]).catch(() => null);
      if (
        hello && hello.slot === CONTROL_SLOT && hello.batch.length === expected.length &&
        hello.batch.every((b, i) => b === expected[i])
      ) {
        return { conn, reader };
      }
      conn.close();
    }
  } finally {
    clearTimeout(timer);
  }
}
