/**
 * Reloading plugins and configuration while the runner keeps its socket and connections.
 *
 * A reload builds a new generation of sandboxes for the plugins that changed (or for every
 * plugin, on SIGHUP), and is all or nothing:
 *
 * 1. Start the new sandboxes of plugins that are in use, so a plugin that no longer loads is
 *    found now.
 * 2. Parse every conf that live tokens use on the new versions. A conf the new version rejects
 *    fails the reload: silently dropping, say, an auth plugin from a route is not an option.
 * 3. Swap, in one synchronous step: the registry answers with the new plugins, and every token
 *    points at the new parsed confs. APISIX keeps its tokens and notices nothing.
 * 4. Retire the old generation: calls already running finish on it (they hold the old
 *    chains); once it is idle, or its calls' deadlines have passed, its sandboxes are stopped.
 *
 * If step 1 or 2 fails, the new sandboxes are stopped and the old generation keeps serving.
 *
 * @module
 */
import type { ChainLink, ConfCache, ConfEntry } from "../apisix/conf_cache.ts";
import type { PluginSettings, RunnerConfig } from "../config/config.ts";
import { log } from "../telemetry/log.ts";
import type { PluginHost, PrepareResult } from "../sandboxes/plugin_host.ts";
import {
  createSupervisor,
  type PluginRegistry,
  sandboxGroups,
} from "../sandboxes/plugin_registry.ts";
import type { Supervisor } from "../sandboxes/supervisor.ts";

/** What to reload. */
export interface ReloadPlan {
  /** The configuration to run from now on (already validated). */
  config: RunnerConfig;
  /** Plugins to start afresh even if their settings did not change; "all" on SIGHUP. */
  restart: "all" | ReadonlySet<string>;
  /** Why, for the log: "SIGHUP", "runner.json changed", "plugins/say.ts changed". */
  reason: string;
}

/** How a reload went. */
export type ReloadResult =
  | {
    ok: true;
    /** Sandboxes replaced or removed. */
    replaced: string[];
    /** Confs parsed again on new plugin versions. */
    confs: number;
    /** Milliseconds from the start of the reload to the swap. */
    ms: number;
  }
  | { ok: false; error: string };

/** Why a reload was refused. */
class ReloadError extends Error {}

/** A conf link of the old generation and what it becomes. */
interface Move {
  route: string;
  /** The new plugin; null when the plugin is gone from the configuration. */
  host: PluginHost | null;
  result: Promise<PrepareResult> | null;
  settled?: PrepareResult;
  used?: boolean;
}

const POLL_MS = 25;
const RETIRE_MARGIN_MS = 2000;

function sameSettings(supervisor: Supervisor, members: readonly PluginSettings[]): boolean {
  return JSON.stringify(supervisor.hosts.map((h) => h.settings)) === JSON.stringify(members);
}

/** Runs reloads one at a time and retires old plugin generations. */
export class Reloader {
  /** Supervisors of replaced generations that still finish their calls. */
  readonly retiring: Set<Supervisor> = new Set();
  /** Reloads so far by result. */
  readonly counts: { ok: number; failed: number } = { ok: 0, failed: 0 };

  #registry: PluginRegistry;
  #cache: ConfCache;
  #onRetired: (supervisor: Supervisor) => void;
  #queue: Promise<unknown> = Promise.resolve();
  #retirements = new Set<Promise<void>>();
  #closed = false;

  /** `onRetired` receives each old supervisor once it is stopped (its metrics are final). */
  constructor(
    registry: PluginRegistry,
    cache: ConfCache,
    onRetired: (supervisor: Supervisor) => void = () => {},
  ) {
    this.#registry = registry;
    this.#cache = cache;
    this.#onRetired = onRetired;
  }

  /** Reloads per `plan`, after any reload already running. */
  reload(plan: ReloadPlan): Promise<ReloadResult> {
    const run = this.#queue.then(() => this.#reload(plan));
    this.#queue = run.catch(() => {});
    return run;
  }

  /** Resolves when every retirement started so far has finished. */
  async settled(): Promise<void> {
    await this.#queue;
    while (this.#retirements.size) await Promise.all(this.#retirements);
  }

  /** Stops retiring generations at once (runner shutdown). */
  close(): void {
    this.#closed = true;
    for (const supervisor of this.retiring) supervisor.close();
  }

  async #reload(plan: ReloadPlan): Promise<ReloadResult> {
    if (this.#closed) return { ok: false, error: "the runner is shutting down" };
    const started = performance.now();
    const current = this.#registry.supervisors;
    const byKey = new Map(current.map((s) => [s.key, s]));
    const forced = (members: readonly PluginSettings[]) =>
      plan.restart === "all" || members.some((m) => (plan.restart as Set<string>).has(m.name));

    const next: Supervisor[] = [];
    const fresh: Supervisor[] = [];
    for (const [key, members] of sandboxGroups(plan.config)) {
      const old = byKey.get(key);
      if (old && !forced(members) && sameSettings(old, members)) {
        next.push(old);
      } else {
        const supervisor = createSupervisor(key, members);
        next.push(supervisor);
        fresh.push(supervisor);
      }
    }
    const kept = new Set(next);
    const leaving = current.filter((s) => !kept.has(s));
    if (fresh.length === 0 && leaving.length === 0) {
      log.runner.info("reload ({reason}): nothing changed", { reason: plan.reason });
      this.counts.ok++;
      return { ok: true, replaced: [], confs: 0, ms: performance.now() - started };
    }
    const leavingHosts = new Set(leaving.flatMap((s) => s.hosts));
    const nextHosts = new Map(next.flatMap((s) => s.hosts.map((h) => [h.settings.name, h])));
    const moves = new Map<ChainLink, Move>();

    try {
      await this.#startInUse(fresh, leaving, leavingHosts);
      await this.#prepareMoves(leavingHosts, (name) => nextHosts.get(name) ?? null, moves, true);
    } catch (error) {
      for (const supervisor of fresh) supervisor.close();
      this.counts.failed++;
      const message = `reload (${plan.reason}) failed: ${(error as Error).message}; ` +
        "the previous plugins and configuration keep serving";
      log.runner.error(message);
      return { ok: false, error: message };
    }

    // The swap: nothing below awaits until every token points at the new generation.
    this.#registry.adopt(next);
    const confs = this.#relink(leavingHosts, moves);
    const ms = performance.now() - started;
    this.counts.ok++;
    const replaced = leaving.map((s) => s.key);
    log.runner.info(
      "reloaded ({reason}) in {ms} ms: {sandboxes} sandboxes replaced, {confs} confs parsed " +
        "again; calls in flight finish on the previous versions",
      { reason: plan.reason, ms: Math.round(ms), sandboxes: replaced.length, confs },
    );
    for (const supervisor of leaving) this.retiring.add(supervisor);
    const retirement = this.#retire(leaving, leavingHosts).finally(() => {
      this.#retirements.delete(retirement);
    });
    this.#retirements.add(retirement);
    return { ok: true, replaced, confs, ms };
  }

  /** Starts the new sandboxes whose plugins are in use; throws if one does not load. */
  async #startInUse(
    fresh: Supervisor[],
    leaving: readonly Supervisor[],
    leavingHosts: ReadonlySet<PluginHost>,
  ): Promise<void> {
    const inUse = new Set<string>();
    for (const supervisor of leaving) {
      if (!supervisor.running) continue;
      for (const host of supervisor.hosts) inUse.add(host.settings.name);
    }
    for (const entry of this.#cache.entries()) {
      for (const link of entry.links) {
        if (leavingHosts.has(link.host)) inUse.add(link.host.settings.name);
      }
    }
    const starts = fresh.filter((s) => s.hosts.some((h) => inUse.has(h.settings.name)));
    await Promise.all(starts.map((s) => s.ensureStarted()));
    for (const supervisor of starts) {
      if (supervisor.startError !== null || !supervisor.running) {
        const names = supervisor.hosts.map((h) => h.settings.name).join(", ");
        throw new ReloadError(
          `plugin ${names}: ${supervisor.startError ?? "the new sandbox did not start"}`,
        );
      }
    }
  }

  /**
   * Parses, on the new plugin versions, the conf of every live token's link to a leaving
   * plugin, until no new link turns up. In `strict` mode a conf the new version rejects
   * throws; otherwise it is dropped from its route later, with a warning.
   */
  async #prepareMoves(
    leavingHosts: ReadonlySet<PluginHost>,
    lookup: (name: string) => PluginHost | null,
    moves: Map<ChainLink, Move>,
    strict: boolean,
  ): Promise<void> {
    for (;;) {
      const pending: Promise<unknown>[] = [];
      for (const entry of this.#cache.entries()) {
        for (const link of entry.links) {
          if (!leavingHosts.has(link.host) || moves.has(link)) continue;
          const host = lookup(link.host.settings.name);
          const move: Move = { route: entry.key, host, result: null };
          if (host) {
            move.result = host.prepare(link.handle.raw);
            pending.push(move.result.then((result) => move.settled = result));
          }
          moves.set(link, move);
        }
      }
      // A token that turns up after this (a PrepareConf that ends around the swap) is moved
      // while the old generation retires.
      if (pending.length === 0) return;
      await Promise.all(pending);
      if (!strict) continue;
      for (const move of moves.values()) {
        const result = move.settled;
        if (result && !result.ok) {
          const plugin = move.host!.settings.name;
          throw new ReloadError(
            result.cause === "bad_conf"
              ? `plugin ${plugin}: the new version rejects the conf of route ${move.route}: ` +
                result.message
              : `plugin ${plugin}: the new version failed (${result.cause}): ${result.message}`,
          );
        }
      }
    }
  }

  /** Points every live token that uses a leaving plugin at the new one. Synchronous. */
  #relink(leavingHosts: ReadonlySet<PluginHost>, moves: Map<ChainLink, Move>): number {
    let moved = 0;
    const gone = new Map<string, number>();
    for (const entry of this.#cache.entries()) {
      if (!entry.links.some((link) => leavingHosts.has(link.host))) continue;
      const links: ChainLink[] = [];
      for (const link of entry.links) {
        const move = leavingHosts.has(link.host) ? moves.get(link) : undefined;
        if (!move) {
          links.push(link);
          continue;
        }
        const result = move.settled;
        if (move.host && result?.ok) {
          links.push({ host: move.host, handle: result.handle });
          move.used = true;
          moved++;
        } else if (!move.host) {
          const name = link.host.settings.name;
          gone.set(name, (gone.get(name) ?? 0) + 1);
        } else {
          this.#warnDropped(entry, link, result);
        }
      }
      this.#cache.relink(entry, links);
    }
    for (const [plugin, routes] of gone) {
      log.runner.warn(
        "plugin {plugin} is no longer configured: {routes} routes that name it now run " +
          "without it",
        { plugin, routes },
      );
    }
    // Confs parsed for tokens that expired meanwhile.
    for (const move of moves.values()) {
      if (!move.used && move.host && move.settled?.ok) move.host.release(move.settled.handle);
      move.used = true;
    }
    return moved;
  }

  #warnDropped(entry: ConfEntry, link: ChainLink, result: PrepareResult | undefined): void {
    log.runner.warn(
      "route {route}: the new version of plugin {plugin} cannot take its conf ({reason}); " +
        "the route runs without it",
      {
        route: entry.key,
        plugin: link.host.settings.name,
        reason: result && !result.ok ? result.message : "not parsed",
      },
    );
  }

  /**
   * Waits until the old generation is idle (or its calls' deadlines have passed) and no token
   * points at it, then stops it. A token prepared on the old generation just as the swap
   * happened is moved over here.
   */
  async #retire(leaving: Supervisor[], leavingHosts: ReadonlySet<PluginHost>): Promise<void> {
    const longest = Math.max(0, ...[...leavingHosts].map((h) => h.settings.timeoutMs));
    const deadline = performance.now() + longest + RETIRE_MARGIN_MS;
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      if (this.#closed) return;
      const stragglers = new Map<ChainLink, Move>();
      await this.#prepareMoves(
        leavingHosts,
        (name) => this.#registry.host(name) ?? null,
        stragglers,
        false,
      );
      if (stragglers.size) this.#relink(leavingHosts, stragglers);
      const busy = [...leavingHosts].reduce((sum, host) => sum + host.busy, 0);
      if (busy === 0 && stragglers.size === 0) break;
      if (performance.now() > deadline) {
        log.runner.warn(
          "stopping the previous plugin versions with {busy} calls still unanswered after " +
            "their deadlines",
          { busy },
        );
        break;
      }
    }
    for (const supervisor of leaving) {
      supervisor.close();
      this.retiring.delete(supervisor);
      this.#onRetired(supervisor);
    }
    log.runner.debug("previous versions of {sandboxes} stopped", {
      sandboxes: leaving.map((s) => s.key).join(", "),
    });
  }
}
