/**
 * A runner for the sandbox suites, served in the test process: the real server on a real Unix
 * socket, real sandbox processes, and direct access to what the process boundary hides from a
 * client (each plugin's counters and restarts, every log line). A plugin that escaped its
 * sandbox and killed or blocked the runner would take the test process with it, which fails
 * the suite as loudly as it should.
 *
 * @module
 */
import { configureSync, getLogfmtFormatter, resetSync } from "@logtape/logtape";
import { equal } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parseConfig } from "../../runner/config/config.ts";
import type { PluginHost } from "../../runner/sandboxes/plugin_host.ts";
import { RunnerServer } from "../../runner/apisix/server.ts";
import type { Supervisor } from "../../runner/sandboxes/supervisor.ts";
import type { Outcome } from "../../runner/telemetry/metrics_core.ts";
import { ApisixConn, latin1, type Reply } from "../support/apisix.ts";

/** Where relative module paths in a harness configuration start. */
export const SUITE_DIR: string = fileURLToPath(new URL("./", import.meta.url));

/**
 * Where the suite's plugins are: `plugins/` here, or the directory in A6_SUITE_PLUGINS (the
 * package tests run the suite again with the plugins copied into an installed plugin package).
 */
const PLUGINS_DIR = Deno.env.get("A6_SUITE_PLUGINS") || "./plugins";

/** A configuration entry for plugin module `file` of this suite, with `settings` added. */
export function suitePlugin(
  file: string,
  settings: Record<string, unknown> = {},
): Record<string, unknown> {
  return { module: `${PLUGINS_DIR}/${file}`, ...settings };
}

/** Bundled `say` on a route and connection of its own: it must keep answering, always. */
export interface Bystander {
  /** One call; asserts the answer. */
  check(): Promise<void>;
  /** Closes its connection. */
  close(): void;
}

/** Starts a {@linkcode Bystander} (the configuration must include `say`). */
export async function startBystander(h: Harness): Promise<Bystander> {
  const conn = await h.connect();
  const token = await conn.token([["say", JSON.stringify({ body: "bystander ok" })]]);
  return {
    async check() {
      const { reply } = await conn.reqCall({ id: 1, token });
      equal(stopBody(reply), "bystander ok");
    },
    close: () => conn.close(),
  };
}

/** A runner served by the test process. */
export interface Harness {
  /** The socket path. */
  socket: string;
  /** Every log line so far (logfmt). */
  lines: string[];
  /** The server. */
  server: RunnerServer;
  /** Resolves to the first log line matching `pattern` (rejects after `timeoutMs`). */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** The lines matching `pattern`. */
  linesMatching(pattern: RegExp): string[];
  /** The runner's side of plugin `name`. */
  host(name: string): PluginHost;
  /** The supervisor of plugin `name`'s sandbox. */
  supervisor(name: string): Supervisor;
  /** A copy of plugin `name`'s outcome counters. */
  counts(name: string): Record<Outcome, number>;
  /** A new APISIX-like connection. */
  connect(): Promise<ApisixConn>;
  /** Stops the server and every sandbox. */
  close(): Promise<void>;
}

/** Starts a runner with `config` (the JSON a user would write; modules relative to this dir). */
export async function startHarness(config: unknown): Promise<Harness> {
  const dir = await Deno.makeTempDir({ prefix: "a6-sandbox-test-" });
  const socket = `${dir}/runner.sock`;
  const lines: string[] = [];
  const waiters: Array<{ pattern: RegExp; resolve(line: string): void }> = [];
  const format = getLogfmtFormatter({ categorySeparator: "." });
  const echo = Deno.env.get("A6_TEST_LOG") === "1";
  configureSync({
    reset: true,
    sinks: {
      memory(record) {
        const line = String(format(record)).trimEnd();
        lines.push(line);
        if (echo) console.error(line);
        for (const waiter of [...waiters]) {
          if (waiter.pattern.test(line)) {
            waiters.splice(waiters.indexOf(waiter), 1);
            waiter.resolve(line);
          }
        }
      },
    },
    loggers: [
      { category: ["a6"], sinks: ["memory"], lowestLevel: "debug" },
      { category: ["logtape", "meta"], sinks: ["memory"], lowestLevel: "warning" },
    ],
  });
  const parsed = parseConfig(config, `${SUITE_DIR}runner.json`);
  const server = new RunnerServer(parsed, { path: socket, confExpireSeconds: 3600 });
  server.listen();
  const serving = server.serve();
  const registry = server.plugins;
  const host = (name: string) => {
    const found = registry.host(name);
    if (!found) throw new Error(`no plugin ${name}`);
    return found;
  };
  return {
    socket,
    lines,
    server,
    waitForLine(pattern, timeoutMs = 15_000) {
      const found = lines.find((line) => pattern.test(line));
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const waiter = {
          pattern,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`no log line matched ${pattern} within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.push(waiter);
      });
    },
    linesMatching: (pattern) => lines.filter((line) => pattern.test(line)),
    host,
    supervisor(name) {
      const supervisor = registry.supervisorOf(host(name));
      if (!supervisor) throw new Error(`no supervisor for ${name}`);
      return supervisor;
    },
    counts: (name) => ({ ...host(name).counters.counts }),
    connect: () => ApisixConn.connect(socket),
    async close() {
      await server.shutdown(200);
      await serving.catch(() => {});
      resetSync();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** The reply as a stop, or a thrown error that shows what came instead. */
export function asStop(reply: Reply): Extract<Reply, { action: "stop" }> {
  if (reply.rpc !== 2 || reply.action !== "stop") {
    throw new Error(`expected a Stop reply, got ${JSON.stringify(reply)}`);
  }
  return reply;
}

/** The value of response header `name` in a Stop reply (joined), or null. */
export function stopHeader(reply: Reply, name: string): string | null {
  const values = asStop(reply).headers.filter(([n]) => n === name).map(([, v]) => v ?? "");
  return values.length ? values.join(", ") : null;
}

/** A Stop reply's body as text. */
export function stopBody(reply: Reply): string {
  const body = asStop(reply).body;
  return body ? latin1(body) : "";
}

/** Waits `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
