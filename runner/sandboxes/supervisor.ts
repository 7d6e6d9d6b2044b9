/**
 * Keeps one sandbox (a process, or an inline worker) running for its plugins: starts it on
 * first use, kills it on a deadline overrun or protocol violation, restarts it with backoff
 * when it dies (replaying every conf, so APISIX never notices), and marks its plugins
 * unavailable for a while when it keeps crashing.
 *
 * @module
 */
import type { PluginSettings } from "../config/config.ts";
import { StartRefused } from "./start_refused.ts";
import { log } from "../telemetry/log.ts";
import { type FailureCause, type HostEvents, PluginHost } from "./plugin_host.ts";

/** How a sandbox ended. */
export interface Exit {
  cause: FailureCause;
  message: string;
}

/** A running sandbox, as the supervisor sees it. */
export interface Carrier {
  /** Starts the sandbox; resolves once every slot's worker has been started. */
  start(): Promise<void>;
  /**
   * Sends a batch to the worker in `slot`. `batch` is a view of the host's write buffer, valid
   * only during the call: a carrier copies what it keeps.
   */
  send(slot: number, batch: Uint8Array): void;
  /** Stops the sandbox at once (SIGKILL for processes). */
  kill(cause: FailureCause, message: string): void;
  /** Resolves when the sandbox has ended, for whatever reason. */
  readonly exited: Promise<Exit>;
  /** The sandbox's process id, if it has its own process. */
  readonly pid: number | null;
}

/**
 * Receives a batch a worker sent; a returned promise asks the carrier to read nothing more from
 * the sandbox until it resolves (the runner is still reading earlier batches, in slices).
 */
export type BatchSink = (slot: number, batch: Uint8Array) => Promise<void> | undefined;

/**
 * Creates a carrier for a supervisor's plugins; `onBatch` receives what the workers send, and
 * `busy` tells whether any of the plugins has calls or conf parses in flight.
 */
export type CarrierFactory = (
  key: string,
  plugins: readonly PluginSettings[],
  onBatch: BatchSink,
  busy: () => boolean,
) => Carrier;

/** Crashes within {@linkcode CRASH_WINDOW_MS} that make a sandbox's plugins unavailable. */
export const CRASH_LIMIT = 5;
const CRASH_WINDOW_MS = 60_000;
const UNAVAILABLE_MS = 30_000;
const BACKOFF_MS = [0, 100, 250, 500, 1000, 2000, 5000];
const START_TIMEOUT_MS = 20_000;
/** How long a plugin whose start was refused (a link out of its files) waits between checks. */
const REFUSED_RETRY_MS = 5_000;

/** One sandbox and the plugins in it. */
export class Supervisor implements HostEvents {
  readonly key: string;
  readonly hosts: PluginHost[];
  /** Times the sandbox was started again after it ended (each of its plugins counts them too). */
  restarts = 0;
  /** Why the last start failed (null after a successful start), for `check` and reloads. */
  startError: string | null = null;

  #factory: CarrierFactory;
  #carrier: Carrier | null = null;
  #starting: Promise<void> | null = null;
  #crashes: number[] = [];
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #unavailableUntil = 0;
  #closed = false;
  #started = false;
  #killReason: Exit | null = null;
  /** Why the start in progress was refused (it then ends without having run). */
  #refusal: string | null = null;
  /** The refusal last logged: the same one again at the next check is not logged again. */
  #loggedRefusal: string | null = null;

  constructor(key: string, plugins: readonly PluginSettings[], factory: CarrierFactory) {
    this.key = key;
    this.#factory = factory;
    this.hosts = plugins.map((settings) => new PluginHost(settings, this));
  }

  /** The process id of the running sandbox, if any. */
  get pid(): number | null {
    return this.#carrier?.pid ?? null;
  }

  /** Whether the sandbox is running. */
  get running(): boolean {
    return this.#carrier !== null && this.#starting === null;
  }

  /** HostEvents: a plugin has work; start the sandbox unless it is cooling down. */
  wake(_host: PluginHost): void {
    this.ensureStarted();
  }

  /** HostEvents: kill the sandbox now; its calls are answered by each plugin's policy. */
  kill(host: PluginHost, cause: FailureCause, message: string): void {
    if (!this.#carrier) return;
    host.log.warn("killing sandbox {sandbox}: {reason}", { sandbox: this.key, reason: message });
    this.#killReason = { cause, message };
    this.#carrier.kill(cause, message);
    // The process takes a while to exit: calls arriving meanwhile must wait for the next
    // sandbox instead of being sent to this one and lost with it.
    for (const each of this.hosts) each.detach(cause, message);
  }

  /** Starts the sandbox if it is not running, starting or cooling down. */
  ensureStarted(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#starting) return this.#starting;
    if (this.#carrier || this.#retryTimer !== undefined) return Promise.resolve();
    if (performance.now() < this.#unavailableUntil) return Promise.resolve();
    this.#starting = this.#start().finally(() => {
      this.#starting = null;
    });
    return this.#starting;
  }

  async #start(): Promise<void> {
    const started = performance.now();
    if (this.#started) {
      this.restarts++;
      for (const host of this.hosts) host.restarts++;
    }
    this.#started = true;
    const carrier = this.#factory(
      this.key,
      this.hosts.map((host) => host.settings),
      (slot, batch) => this.hosts[slot]?.receive(batch),
      () => this.hosts.some((host) => host.busy > 0),
    );
    this.#carrier = carrier;
    this.#killReason = null;
    const ready = this.hosts.map((host) => host.waitReady());
    // Handled at once: the sandbox can end (and reject these) while carrier.start() is still
    // running, before anything awaits them; Promise.all below still sees the rejection.
    for (const waiting of ready) waiting.catch(() => {});
    carrier.exited.then((exit) => this.#ended(carrier, exit));
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await carrier.start();
      await Promise.race([
        Promise.all(ready),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`not ready after ${START_TIMEOUT_MS} ms`)),
            START_TIMEOUT_MS,
          );
        }),
      ]);
    } catch (error) {
      const message = `sandbox ${this.key} failed to start: ${(error as Error).message}`;
      this.startError = message;
      if (error instanceof StartRefused) this.#refusal = message;
      if (this.#carrier === carrier) carrier.kill("crash", message);
      for (const host of this.hosts) host.failPendingConfs("crash", message);
      return;
    } finally {
      clearTimeout(timer);
    }
    if (this.#carrier !== carrier) {
      this.startError = `sandbox ${this.key} ended while it was starting`;
      return;
    }
    this.startError = null;
    this.#loggedRefusal = null;
    log.sandbox.info("sandbox {sandbox} ready in {ms} ms (pid {pid})", {
      sandbox: this.key,
      ms: Math.round(performance.now() - started),
      pid: carrier.pid ?? "inline",
    });
    this.hosts.forEach((host, slot) => host.attach((batch) => carrier.send(slot, batch)));
  }

  #ended(carrier: Carrier, exit: Exit): void {
    if (this.#carrier !== carrier) return;
    this.#carrier = null;
    const reason = this.#killReason ?? exit;
    // Each call in flight is counted once, with the cause, as it is answered.
    for (const host of this.hosts) host.detach(reason.cause, reason.message);
    if (this.#closed) return;
    if (this.#refusal !== null) return this.#refused(this.#refusal);
    log.sandbox.warn("sandbox {sandbox} ended: {reason}", {
      sandbox: this.key,
      reason: reason.message,
    });
    const now = performance.now();
    this.#crashes = this.#crashes.filter((at) => now - at < CRASH_WINDOW_MS);
    this.#crashes.push(now);
    if (this.#crashes.length >= CRASH_LIMIT) {
      this.#crashes = [];
      this.#unavailableUntil = now + UNAVAILABLE_MS;
      const why = `plugin sandbox ${this.key} ended ${CRASH_LIMIT} times within ` +
        `${CRASH_WINDOW_MS / 1000} s (last: ${reason.message}); its plugins are unavailable ` +
        `for ${UNAVAILABLE_MS / 1000} s`;
      log.sandbox.error(why);
      for (const host of this.hosts) host.markUnavailable(why);
      this.#schedule(UNAVAILABLE_MS);
      return;
    }
    this.#schedule(BACKOFF_MS[Math.min(this.#crashes.length - 1, BACKOFF_MS.length - 1)]!);
  }

  /**
   * A start refused for a reason a restart cannot mend (see start_refused.ts): not a crash. One log
   * line per distinct refusal, however often APISIX asks; the plugins answer by their failure
   * policy at once, and the files are checked again after a while (the operator may fix them).
   */
  #refused(why: string): void {
    this.#refusal = null;
    if (why !== this.#loggedRefusal) log.sandbox.error(why);
    this.#loggedRefusal = why;
    this.#unavailableUntil = performance.now() + REFUSED_RETRY_MS;
    for (const host of this.hosts) host.markUnavailable(why);
    this.#schedule(REFUSED_RETRY_MS);
  }

  #schedule(delay: number): void {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      for (const host of this.hosts) host.clearUnavailable();
      // Start again only for plugins still in use; otherwise the next PrepareConf will.
      if (this.hosts.some((host) => host.confCount > 0 || host.busy > 0)) this.ensureStarted();
    }, delay);
  }

  /** Stops the sandbox for good (runner shutdown). */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#carrier?.kill("crash", "the runner is shutting down");
  }
}
