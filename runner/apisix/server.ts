/**
 * The runner's server: the APISIX socket (PROTOCOL.md §1.3), one {@linkcode Connection} per
 * client served concurrently, and shutdown (§1.4): stop accepting, let calls in flight finish,
 * exit within a second, and unlink the socket only if it is still ours.
 *
 * @module
 */
import { dirname, isAbsolute } from "node:path";
import { ConfCache } from "./conf_cache.ts";
import type { RunnerConfig } from "../config/config.ts";
import { Connection } from "./connection.ts";
import { log } from "../telemetry/log.ts";
import { PluginRegistry } from "../sandboxes/plugin_registry.ts";

/** Thrown for a bad `APISIX_LISTEN_ADDRESS` or `APISIX_CONF_EXPIRE_TIME`. */
export class EnvironmentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EnvironmentError";
  }
}

/** The socket path in `APISIX_LISTEN_ADDRESS` (`unix:` + an absolute path). */
export function parseListenAddress(value: string | undefined): string {
  if (value === undefined || value === "") {
    throw new EnvironmentError(
      "APISIX_LISTEN_ADDRESS is not set: expected unix:/absolute/path.sock (APISIX sets it; " +
        "set it yourself when you start the runner by hand)",
    );
  }
  if (!value.startsWith("unix:")) {
    throw new EnvironmentError(
      `APISIX_LISTEN_ADDRESS=${JSON.stringify(value)} lacks the "unix:" prefix: expected ` +
        "unix:/absolute/path.sock",
    );
  }
  const path = value.slice("unix:".length);
  if (!isAbsolute(path)) {
    throw new EnvironmentError(
      `APISIX_LISTEN_ADDRESS=${JSON.stringify(value)}: expected an absolute socket path`,
    );
  }
  return path;
}

/** `APISIX_CONF_EXPIRE_TIME` in seconds (default 3600; never zero). */
export function parseConfExpireTime(value: string | undefined): number {
  if (value === undefined || value.trim() === "") return 3600;
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new EnvironmentError(
      `APISIX_CONF_EXPIRE_TIME=${JSON.stringify(value)}: expected a positive number of seconds`,
    );
  }
  return seconds;
}

// How long a connection must stay quiet during shutdown before it is closed.
const QUIET_MS = 50;

/** Options of {@linkcode RunnerServer}. */
export interface ServerOptions {
  /** Socket path to listen on. */
  path: string;
  /** APISIX's conf cache time in seconds; tokens live 1.2 times as long after their last use. */
  confExpireSeconds: number;
  /** Most conf tokens kept. */
  maxConfTokens?: number;
  /** Benchmark-only protocol floor (see ConnectionDeps.floor). */
  floor?: boolean;
}

/** The APISIX-facing server. */
export class RunnerServer {
  readonly path: string;
  readonly cache: ConfCache;
  readonly plugins: PluginRegistry;
  readonly connections: Set<Connection> = new Set();
  #listener: Deno.Listener | null = null;
  #inode: number | null = null;
  #draining = false;
  #floor: boolean;

  constructor(config: RunnerConfig, options: ServerOptions) {
    this.path = options.path;
    this.#floor = options.floor ?? false;
    this.cache = new ConfCache({
      ttlMs: options.confExpireSeconds * 1.2 * 1000,
      maxEntries: options.maxConfTokens ?? 100_000,
    });
    this.plugins = new PluginRegistry(config);
  }

  /**
   * Creates the socket: parent folder, stale file replaced, mode 0766 (§1.3).
   *
   * Deno's listener unlinks the path it was bound to when it closes, whatever file is there by
   * then: at a reload that is the newer runner's socket (apache/apisix#11347). So the socket is
   * bound under a temporary name in the same folder and renamed over the path, which also
   * replaces a stale file atomically (no moment where APISIX finds no socket).
   */
  listen(): void {
    Deno.mkdirSync(dirname(this.path), { recursive: true });
    let stale = false;
    try {
      if (Deno.lstatSync(this.path).isDirectory) {
        throw new EnvironmentError(`${this.path} is a directory, not a socket path`);
      }
      stale = true;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    this.#listener = this.#bind(`${this.path}.${Deno.pid}`);
    if (stale) log.runner.info("removed stale file at {path}", { path: this.path });
    // nginx workers often run as nobody: they must be able to connect.
    Deno.chmodSync(this.path, 0o766);
    this.#inode = Deno.statSync(this.path).ino;
    log.runner.info("listening on unix:{path}", { path: this.path });
  }

  #bind(temporary: string): Deno.Listener {
    // A Unix socket path holds at most 107 bytes; without room for the suffix, bind in place.
    if (new TextEncoder().encode(temporary).length > 107) {
      try {
        Deno.removeSync(this.path);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
      return Deno.listen({ transport: "unix", path: this.path });
    }
    try {
      Deno.removeSync(temporary);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    const listener = Deno.listen({ transport: "unix", path: temporary });
    try {
      Deno.renameSync(temporary, this.path);
    } catch (error) {
      listener.close();
      throw error;
    }
    return listener;
  }

  /** Accepts connections until {@linkcode shutdown}. */
  async serve(): Promise<void> {
    const listener = this.#listener;
    if (!listener) throw new Error("listen() first");
    try {
      for await (const conn of listener) {
        if (this.#draining) {
          // Shutting down with the listener kept open (see shutdown): refuse.
          conn.close();
          continue;
        }
        const connection = new Connection(conn, {
          cache: this.cache,
          plugins: this.plugins,
          floor: this.#floor,
        });
        this.connections.add(connection);
        log.conn.debug("connection {id} opened ({open} open)", {
          id: connection.id,
          open: this.connections.size,
        });
        connection.serve().finally(() => {
          this.connections.delete(connection);
          log.conn.debug("connection {id} closed", { id: connection.id });
        });
      }
    } catch (error) {
      if (!this.#draining) throw error;
    }
  }

  /**
   * Stops accepting, waits up to `graceMs` for exchanges in progress, then closes everything.
   * The socket file is removed only if it is still the one this process created: a newer
   * runner may already listen on the same path (apache/apisix#11347).
   */
  async shutdown(graceMs = 800): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    // Deno removes a Unix socket's path when its listener closes, whoever owns the path by then.
    // Close only while the path is still ours; otherwise keep the listener (nobody can reach it
    // any more) and let the process exit without closing it, so the successor's socket stays.
    if (this.#isOurs()) {
      this.#listener?.close();
      try {
        // Deno versions that leave the file behind.
        if (this.#isOurs()) Deno.removeSync(this.path);
      } catch {
        // Already gone.
      }
    } else {
      log.runner.info("left {path} in place: it is no longer this runner's socket", {
        path: this.path,
      });
    }
    const started = performance.now();
    const deadline = started + graceMs;
    // A connection closes once it has been idle for QUIET_MS: a request already on its way
    // (in the socket buffer when the signal came) is still answered, and busy connections
    // close as soon as their exchange is answered. An exchange is seen by its count changing
    // between two looks, 5 ms apart.
    const quietSince = new Map<Connection, { exchanges: number; since: number }>();
    for (;;) {
      const now = performance.now();
      for (const connection of this.connections) {
        let seen = quietSince.get(connection);
        if (!seen) {
          seen = { exchanges: connection.exchanges, since: started };
          quietSince.set(connection, seen);
        } else if (seen.exchanges !== connection.exchanges) {
          seen.exchanges = connection.exchanges;
          seen.since = now;
        }
        if (!connection.busy && now - seen.since >= QUIET_MS) connection.close();
      }
      if (this.connections.size === 0 || now >= deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    for (const connection of this.connections) connection.close();
    this.cache.close();
    await this.plugins.close();
  }

  #isOurs(): boolean {
    try {
      return this.#inode !== null && Deno.lstatSync(this.path).ino === this.#inode;
    } catch {
      return false;
    }
  }
}
