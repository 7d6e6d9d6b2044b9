/**
 * Runs a sandbox as a child process: the same program started in its sandbox role from
 * `Deno.execPath()`, connected to the runner over a private Unix socket that only it can open
 * (a fresh path per start, a secret handshake, the path unlinked once every connection is in),
 * with a V8 heap limit and a resident-memory watchdog, and killed with SIGKILL when it
 * misbehaves. The sandbox's main thread has one connection (control: its init, and its reports);
 * each plugin worker has its own (its batches), opened with its slot's own secret.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ChannelReader, ChannelWriter, CONTROL_SLOT } from "../../sandbox/channel.ts";
import type { SandboxActivity, SandboxEvent, SandboxInit } from "../../sandbox/process_main.ts";
import { SECRET_ENV } from "../../sandbox/process_main.ts";
import { channelDirectory } from "./channel_dir.ts";
import { CodeSnapshot } from "./code_snapshot.ts";
import { ownDirectory, type PermissionKind, type PluginSettings } from "../config/config.ts";
import { checkGrants, type GrantPaths, grantRoots } from "./grant_check.ts";
import { StartRefused } from "./start_refused.ts";
import { log } from "../telemetry/log.ts";
import { generatedConfigFile, packageProblem } from "../config/packages.ts";
import type { FailureCause } from "./plugin_host.ts";
import type { BatchSink, Carrier, Exit } from "./supervisor.ts";
import { workerPermissions } from "./worker_permissions.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "main.ts");
const HANDSHAKE_TIMEOUT_MS = 10_000;
// An ArrayBuffer bomb fills pages at 1–2 GiB/s: poll often enough that the overshoot stays small
// while the plugins have work, and rarely while they have none (the sandbox's own watch does the
// same; see process_main.ts).
const RSS_POLL_MS = 100;
const IDLE_RSS_POLL_MS = 1000;
/** How long a sandbox whose plugins have nothing in flight waits before it counts as idle. */
const IDLE_AFTER_MS = 1000;
/** What a sandbox process needs beyond its plugins' heap: the Deno runtime of two isolates. */
const RUNTIME_OVERHEAD_MB = 96;
/** What each further plugin worker of a shared group adds (an isolate with Node compatibility). */
const WORKER_OVERHEAD_MB = 24;

/** The resident-memory limit of a sandbox: the largest heap limit plus the runtime's share. */
export function sandboxMemoryLimitMb(plugins: readonly PluginSettings[]): number {
  return Math.max(...plugins.map((p) => p.memoryMb)) + RUNTIME_OVERHEAD_MB +
    WORKER_OVERHEAD_MB * (plugins.length - 1);
}

// The code a sandbox loads under `deno run`: its own modules and their npm dependencies.
const SANDBOX_CODE = ["main.ts", "mod.ts", "sandbox", "api", "protocol", "node_modules"]
  .map((name) => join(ROOT, name));
// What the runner speaks to its sandboxes, as it was when it started (node_modules is pinned by
// the lock file). Embedded, and so unchangeable, in a compiled binary.
/** The sandbox code a group's process reads: a package's sandbox uses the package's node_modules. */
function sandboxCode(plugins: readonly PluginSettings[]): string[] {
  return plugins.some((p) => p.package)
    ? SANDBOX_CODE.filter((path) => !path.endsWith("node_modules"))
    : SANDBOX_CODE;
}
const codeAtStart = Deno.build.standalone
  ? null
  : CodeSnapshot.take(SANDBOX_CODE.filter((path) => !path.endsWith("node_modules")))
    .catch(() => null); // Unreadable: sandboxes then start without the check.

const INSPECTOR_HOSTS = ["127.0.0.1:9229", "localhost:9229", "[::1]:9229", "0.0.0.0:9229"];

let spawned = 0;

function secretHex(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The union of a group's grants for one permission kind. */
function union(plugins: readonly PluginSettings[], kind: PermissionKind): string[] {
  return [...new Set(plugins.flatMap((p) => p.permissions[kind]))];
}

/** What a sandbox's process may read and write: paths as written and as real paths. */
export interface SandboxPaths {
  /** The sandbox's own code. */
  code: readonly string[];
  /** Each plugin's paths, in the order of the plugins. */
  plugins: readonly GrantPaths[];
}

/**
 * Checks the links in what a sandbox's plugins may read and write, and in the sandbox's own
 * code, before it starts (again at every start: files change). Rejects with `GrantRefused`,
 * naming the link and where it leads, when one leads out of its tree.
 */
export async function checkSandboxPaths(
  plugins: readonly PluginSettings[],
): Promise<SandboxPaths> {
  const each = await Promise.all(
    plugins.map((p) => checkGrants(`plugin ${p.name}`, grantRoots(p))),
  );
  // The process may read its plugins' trees anyway (a workspace's node_modules links to them).
  const code = Deno.build.standalone
    ? [] // Embedded in the binary.
    : (await checkGrants("the sandbox code", { read: sandboxCode(plugins), write: [] }, {
      alsoReadable: each.flatMap((p) => p.read),
    })).read;
  return { code, plugins: each };
}

/**
 * Command-line arguments that start a sandbox under `deno run`, granting only what it needs.
 * `paths` come from {@linkcode checkSandboxPaths}; without them, the configured paths as
 * written.
 */
export function sandboxRunArgs(
  plugins: readonly PluginSettings[],
  channel: string,
  paths?: SandboxPaths,
): string[] {
  const heapMb = Math.max(...plugins.map((p) => p.memoryMb));
  // A package's sandbox resolves imports with the configuration `install` wrote inside the
  // package (config.ts keeps a sandbox to one package): its node_modules, not the runner's.
  const pkg = plugins.find((p) => p.package)?.package ?? null;
  const code = sandboxCode(plugins);
  const read = paths
    ? [...new Set([...paths.code, ...paths.plugins.flatMap((p) => p.read)]), channel]
    : [
      ...code,
      ...plugins.map(ownDirectory).filter((d): d is string => d !== null),
      ...union(plugins, "read"),
      channel,
    ];
  const write = paths
    ? [...new Set(paths.plugins.flatMap((p) => p.write))]
    : union(plugins, "write");
  const flag = (name: string, list: string[]) =>
    list.length ? [`--allow-${name}=${list.join(",")}`] : [];
  return [
    "run",
    "--no-prompt",
    "--cached-only",
    // A plugin's npm: import must not install packages from the machine's npm cache into the
    // runner's node_modules (and rewrite its lockfile): only what the lockfile holds loads.
    "--frozen",
    `--config=${pkg ? generatedConfigFile(pkg) : join(ROOT, "deno.json")}`,
    // Installed ahead of time by `install`: the sandbox uses node_modules as it is.
    ...(pkg ? ["--node-modules-dir=manual"] : []),
    // A 4 MB young generation: with 1 MB, per-call objects still alive when the next scavenge
    // came were promoted to the old generation and cost its GC more CPU than the 4 MB cost RSS.
    `--v8-flags=--max-old-space-size=${heapMb},--max-semi-space-size=4`,
    ...flag("read", read),
    ...flag("write", [...write, channel]),
    ...flag("net", [...union(plugins, "net"), `unix:${channel}`]),
    // Where SIGUSR1 opens Deno's inspector: even a plugin granted localhost may not reach it.
    `--deny-net=${INSPECTOR_HOSTS.join(",")}`,
    ...flag("env", [...union(plugins, "env"), SECRET_ENV]),
    ...flag("sys", union(plugins, "sys")),
    // Without a flag Deno allows imports from deno.land, jsr.io, esm.sh and more by default.
    ...(union(plugins, "import").length
      ? flag("import", union(plugins, "import"))
      : ["--deny-import"]),
    MAIN,
    "sandbox",
    channel,
  ];
}

/** Permission kinds a compiled sandbox drops entirely because none of its plugins has them. */
export function revocations(plugins: readonly PluginSettings[]): Deno.PermissionName[] {
  const revoke: Deno.PermissionName[] = ["run", "ffi"];
  // Not read: the worker must still load its plugin's files (and per-path revocation cannot
  // narrow a global grant). See docs/sandbox.md for what stays wider in a compiled binary.
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

/** Longest sandbox output line logged; the rest is cut. */
const MAX_LINE = 8192;

/**
 * Reads a sandbox's output as lines and passes at most `linesPerSecond` of them on. Once a
 * second's lines are used up it drops the rest of the chunk in hand and stops reading until the
 * next second, so a flood fills the pipe and blocks the writer (the plugin) instead of costing
 * the runner CPU; `onDropped` then reports how many lines it dropped. `watch` sees every line,
 * dropped or not.
 */
async function pipeLines(
  stream: ReadableStream<Uint8Array>,
  linesPerSecond: number,
  onLine: (line: string) => void,
  onDropped: (count: number) => void,
  watch: (line: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let partial = "";
  let windowStart = performance.now();
  let lines = 0;
  let dropped = 0;
  const emit = (line: string) => {
    if (!line.trim()) return;
    watch(line);
    if (lines >= linesPerSecond) {
      dropped++;
      return;
    }
    lines++;
    onLine(line.length > MAX_LINE ? line.slice(0, MAX_LINE) + "…" : line);
  };
  try {
    for await (const chunk of stream) {
      const parts = (partial + decoder.decode(chunk, { stream: true })).split("\n");
      partial = parts.pop()!;
      if (partial.length > MAX_LINE) {
        emit(partial);
        partial = "";
      }
      for (const line of parts) emit(line);
      let now = performance.now();
      if (lines >= linesPerSecond && now - windowStart < 1000) {
        await new Promise((resolve) => setTimeout(resolve, 1000 - (now - windowStart)));
        now = performance.now();
      }
      if (now - windowStart >= 1000) {
        if (dropped) onDropped(dropped);
        windowStart = now;
        lines = 0;
        dropped = 0;
      }
    }
  } catch {
    // The process is gone.
  }
  if (partial.trim()) emit(partial);
  if (dropped) onDropped(dropped);
}

/** What Deno prints when SIGUSR1 opened its inspector (Deno ≥ 2.9.2 does that in any process). */
const INSPECTOR_BANNER = /^Debugger listening on /;

/** How a sandbox process ended, from its exit status and the last lines it wrote. */
function classifyExit(status: Deno.CommandStatus, tail: string, lost: string | null): Exit {
  // V8 aborts with SIGTRAP (exit 133) after "Fatal JavaScript out of memory".
  if (
    status.signal === "SIGTRAP" || status.code === 133 || /out of memory|heap limit/i.test(tail)
  ) {
    return { cause: "oom", message: "the sandbox ran out of memory (V8 heap limit)" };
  }
  const how = status.signal ? `signal ${status.signal}` : `code ${status.code}`;
  return {
    cause: "crash",
    message: lost ? `${lost} (the process ended with ${how})` : `the sandbox exited (${how})`,
  };
}

/** Reads a process's resident memory, or null when it cannot (gone, or no permission). */
function residentMb(pid: number): number | null {
  try {
    const statm = Deno.readTextFileSync(`/proc/${pid}/statm`);
    return (Number(statm.split(" ")[1]) * 4096) / (1024 * 1024);
  } catch {
    return null;
  }
}

/**
 * Whether this process may read other processes' /proc files: Deno 2.9 wants --allow-all for
 * that, which `deno task start` does not grant. Without it only the sandbox's own report of its
 * resident memory (see process_main.ts) enforces the limit.
 */
let canReadProc: boolean | null = null;

/** A carrier that runs the sandbox in a child process. */
export function processCarrier(
  key: string,
  plugins: readonly PluginSettings[],
  onBatch: BatchSink,
  busy: () => boolean = () => false,
): Carrier {
  let child: Deno.ChildProcess | null = null;
  let writers: ChannelWriter[] = [];
  let pid: number | null = null;
  let killed: Exit | null = null;
  // Why the runner lost the sandbox before it knew how the process ended (the exit status and
  // the last lines on stderr tell that better: a heap exhaustion also closes the channel).
  let lost: string | null = null;
  // Activity: the sandbox is told when its plugins go idle and when they have work again.
  let watchdog: ReturnType<typeof setTimeout> | undefined;
  let controlWriter: ChannelWriter | null = null;
  let lastActivity = performance.now();
  let toldBusy = true;
  const stderrTail: string[] = [];
  let resolveExit!: (exit: Exit) => void;
  const exited = new Promise<Exit>((resolve) => resolveExit = resolve);
  let ended = false;
  const memoryLimitMb = sandboxMemoryLimitMb(plugins);
  const stderrLinesPerSecond = Math.max(
    10,
    plugins.reduce((sum, p) => sum + p.logLinesPerSecond, 0),
  );

  const finish = (exit: Exit) => {
    if (ended) return;
    ended = true;
    clearTimeout(watchdog);
    watchdog = undefined;
    resolveExit(killed ?? exit);
  };

  const sigkill = () => {
    try {
      child?.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  };

  const kill = (cause: FailureCause, message: string) => {
    killed ??= { cause, message };
    if (child) sigkill();
    else finish(killed);
  };

  const lose = (message: string) => {
    lost ??= message;
    if (child) sigkill();
    else finish({ cause: "crash", message });
  };

  const start = async () => {
    const changed = await (await codeAtStart)?.firstChange();
    if (changed) {
      throw new StartRefused(
        `${changed} changed on disk since the runner started, and a sandbox started from it ` +
          "might not understand this runner: restart the runner",
      );
    }
    const packaged = plugins.find((p) => p.package);
    const notInstalled = packaged?.package
      ? await packageProblem(packaged.package, packaged.configFile ?? null)
      : null;
    if (notInstalled) throw new StartRefused(notInstalled);
    const paths = await checkSandboxPaths(plugins);
    const dir = await channelDirectory();
    // Stopped during the checks (a shutdown): a process spawned now would be nobody's.
    if (ended) throw new Error("the sandbox was stopped while it was starting");
    const channel = join(dir, `${key.replace(/[^A-Za-z0-9._-]/g, "_")}-${++spawned}.sock`);
    const secret = secretHex();
    const listener = Deno.listen({ transport: "unix", path: channel });
    try {
      const standalone = Deno.build.standalone;
      child = new Deno.Command(Deno.execPath(), {
        args: standalone ? ["sandbox", channel] : sandboxRunArgs(plugins, channel, paths),
        env: childEnv(plugins, secret),
        clearEnv: true,
        stdin: "null",
        // The sandbox writes only to stderr; whatever reaches its stdout is discarded there.
        stdout: "null",
        stderr: "piped",
        // A neutral working directory: Deno.cwd() needs no permission in a worker.
        cwd: "/",
      }).spawn();
      pid = child.pid;
      const sandboxLog = (line: string) => {
        stderrTail.push(line);
        if (stderrTail.length > 20) stderrTail.shift();
        log.sandbox.warn("sandbox {sandbox} says: {line}", { sandbox: key, line });
      };
      const stderrDone = pipeLines(child.stderr, stderrLinesPerSecond, sandboxLog, (count) => {
        log.sandbox.warn("sandbox {sandbox}: dropped {count} output lines over the limit", {
          sandbox: key,
          count,
        });
      }, (line) => {
        if (INSPECTOR_BANNER.test(line)) {
          kill("violation", "the sandbox opened a V8 inspector (it was sent SIGUSR1)");
        }
      });
      child.status.then(async (status) => {
        if (status.signal !== "SIGTRAP" && status.code !== 133) {
          // The last lines (an out-of-memory report) may still be in the pipe; wait a moment.
          await Promise.race([stderrDone, new Promise((resolve) => setTimeout(resolve, 20))]);
        }
        finish(classifyExit(status, stderrTail.join("\n"), lost));
      });

      const secrets = new Map<number, string>([[CONTROL_SLOT, secret]]);
      const control = await acceptWithSecret(listener, secrets, exited);
      controlWriter = new ChannelWriter(control.conn);
      controlWriter.onError = () => lose("the channel to the sandbox broke");
      const slotSecrets = plugins.map(() => secretHex());
      const init: SandboxInit = {
        slots: plugins.map((settings, slot) => ({
          name: settings.name,
          module: settings.module,
          permissions: withChannel(workerPermissions(settings, paths.plugins[slot]), channel),
          logLinesPerSecond: settings.logLinesPerSecond,
          secret: slotSecrets[slot]!,
        })),
        revoke: standalone ? revocations(plugins) : [],
        memoryLimitMb,
      };
      controlWriter.send(CONTROL_SLOT, new TextEncoder().encode(JSON.stringify(init)));
      readChannel(control.conn, control.reader, CONTROL_SLOT);
      // Each worker opens its own connection, before its plugin loads.
      const slots = new Map(slotSecrets.map((slotSecret, slot) => [slot, slotSecret]));
      const opened: ChannelWriter[] = [];
      while (slots.size) {
        const { conn, reader, slot } = await acceptWithSecret(listener, slots, exited);
        slots.delete(slot);
        const slotWriter = new ChannelWriter(conn);
        slotWriter.onError = () => lose(`the channel to plugin ${plugins[slot]!.name} broke`);
        opened[slot] = slotWriter;
        readChannel(conn, reader, slot);
      }
      writers = opened;
      canReadProc ??= residentMb(pid) !== null;
      active();
    } finally {
      listener.close();
      await Deno.remove(channel).catch(() => {});
    }
  };

  const tell = (activity: SandboxActivity) => {
    controlWriter?.send(CONTROL_SLOT, new TextEncoder().encode(JSON.stringify(activity)));
  };

  /** Watches memory from outside (when it can) and tells the sandbox when it goes idle. */
  const tick = () => {
    watchdog = undefined;
    if (ended) return;
    if (canReadProc) {
      // A second watch from outside, for a sandbox whose own watch cannot run.
      const rss = pid === null ? null : residentMb(pid);
      if (rss !== null && rss > memoryLimitMb) {
        kill("oom", `resident memory ${Math.round(rss)} MiB exceeded ${memoryLimitMb} MiB`);
        return;
      }
    }
    const idle = !busy() && performance.now() - lastActivity >= IDLE_AFTER_MS;
    if (idle && toldBusy) {
      toldBusy = false;
      tell({ busy: false });
    }
    const next = idle
      ? (canReadProc ? IDLE_RSS_POLL_MS : null)
      : (canReadProc ? RSS_POLL_MS : IDLE_AFTER_MS);
    if (next === null) return;
    watchdog = setTimeout(tick, next);
    Deno.unrefTimer(watchdog);
  };

  /** A batch went to or came from the sandbox. */
  const active = () => {
    lastActivity = performance.now();
    if (!toldBusy) {
      toldBusy = true;
      tell({ busy: true });
    }
    if (watchdog === undefined && controlWriter && !ended) {
      clearTimeout(watchdog);
      watchdog = setTimeout(tick, canReadProc ? RSS_POLL_MS : IDLE_AFTER_MS);
      Deno.unrefTimer(watchdog);
    }
  };

  // `slot` is the connection's: a frame that names another is a violation.
  const readChannel = async (conn: Deno.Conn, reader: ChannelReader, slot: number) => {
    try {
      for (;;) {
        const frame = await reader.next();
        if (!frame) break;
        if (frame.slot !== slot) {
          kill("violation", `a frame for slot ${frame.slot} on the connection of slot ${slot}`);
        } else if (frame.slot === CONTROL_SLOT) {
          const event = JSON.parse(new TextDecoder().decode(frame.batch)) as SandboxEvent;
          if (event.event === "memory") {
            kill("oom", event.message);
            continue;
          }
          const name = plugins[event.slot]?.name ?? `slot ${event.slot}`;
          kill(
            event.event === "violation" ? "violation" : "crash",
            `plugin ${name}: ${event.message}`,
          );
        } else if (frame.slot < plugins.length) {
          active();
          // Back-pressure: while the runner still reads earlier batches, the sandbox waits.
          const reading = onBatch(frame.slot, frame.batch);
          if (reading) await reading;
        } else {
          kill("violation", `a batch from unknown slot ${frame.slot}`);
        }
      }
    } catch (error) {
      kill("violation", `the channel broke: ${(error as Error).message}`);
    }
    conn.close();
    lose("the sandbox closed its channel");
  };

  return {
    get pid() {
      return pid;
    },
    exited,
    start,
    send(slot, batch) {
      writers[slot]?.send(slot, batch);
      active();
    },
    kill,
  };
}

/** The permissions of a worker that opens its own end of the channel (and then revokes it). */
function withChannel(
  permissions: Deno.PermissionOptionsObject,
  channel: string,
): Deno.PermissionOptionsObject {
  // workerPermissions gives lists or false, never a blanket grant.
  const add = (list: unknown, entry: string): string[] =>
    Array.isArray(list) ? [...list.map(String), entry] : [entry];
  return {
    ...permissions,
    read: add(permissions.read, channel),
    write: add(permissions.write, channel),
    net: add(permissions.net, `unix:${channel}`),
  };
}

/**
 * Accepts the next connection that presents one of `secrets` (by slot, in its first frame);
 * others are closed.
 */
async function acceptWithSecret(
  listener: Deno.Listener,
  secrets: ReadonlyMap<number, string>,
  exited: Promise<Exit>,
): Promise<{ conn: Deno.Conn; reader: ChannelReader; slot: number }> {
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
      const secret = hello ? secrets.get(hello.slot) : undefined;
      const expected = new TextEncoder().encode(secret ?? "");
      if (
        hello && secret !== undefined && hello.batch.length === expected.length &&
        hello.batch.every((b, i) => b === expected[i])
      ) {
        return { conn, reader, slot: hello.slot };
      }
      conn.close();
    }
  } finally {
    clearTimeout(timer);
  }
}
