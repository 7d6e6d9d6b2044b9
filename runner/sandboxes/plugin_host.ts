/**
 * The runner's side of one plugin: its confs, its calls in flight, their deadlines, batching of
 * messages to its worker, and the checks on everything the worker sends back (which is
 * untrusted). The sandbox that runs the worker is managed by a {@linkcode Supervisor}.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import { ByteFormatError, type ByteReader, decodeUtf8 } from "../../api/bytes.ts";
import { Patch, type PatchScan, scanPatch } from "../../api/patch.ts";
import type { Steps } from "../../protocol/steps.ts";
import { MAX_PAYLOAD } from "../../protocol/frame.ts";
import {
  type PrefetchList,
  type PrefetchQuestion,
  prefetchQuestions,
  readPrefetch,
} from "../../api/prefetch.ts";
import { IdTable, MAX_TABLE_ID } from "../../sandbox/id_table.ts";
import {
  BatchWriter,
  FailCause,
  Info,
  Kind,
  LogLevel,
  messagesOf,
  Phase,
} from "../../sandbox/messages.ts";
import type { PluginSettings } from "../config/config.ts";
import { LineLimiter } from "../telemetry/line_limiter.ts";
import { LogGate } from "./log_gate.ts";
import { slicer } from "./slicer.ts";
import { pluginLogger } from "../telemetry/log.ts";
import { Histogram, OutcomeCounters } from "../telemetry/metrics_core.ts";

/** Why a call produced no patch. */
export type FailureCause =
  | "error"
  | "denied"
  | "timeout"
  | "crash"
  | "oom"
  | "unavailable"
  | "violation"
  | "bad_conf";

/** The result of one plugin call. */
export type CallOutcome =
  | { ok: true; patch: Patch; size: PatchScan }
  | { ok: false; cause: FailureCause; message: string };

/** What a call needs from the APISIX connection it belongs to. */
export interface CallContext {
  /** Asks APISIX (or the call's cache) for ExtraInfo. */
  ask(info: "var" | "reqBody" | "respBody", name: string): Promise<Uint8Array | null>;
  /** The request payload, a copy of its own once APISIX has been asked anything. */
  readonly request: Uint8Array;
}

/** Sends a batch to the plugin's worker: a view valid only during the call (copy to keep it). */
export type Link = (batch: Uint8Array) => void;

/** What the host tells its supervisor. */
export interface HostEvents {
  /** The worker broke the protocol, flooded, or a call overran its deadline: kill the sandbox. */
  kill(host: PluginHost, cause: "timeout" | "violation", message: string): void;
  /** The host has work but no running sandbox. */
  wake(host: PluginHost): void;
}

type ConfResult =
  | { ok: true; prefetch: PrefetchList | null }
  | { ok: false; cause: FailureCause; message: string };

/** The outcome of {@linkcode PluginHost.prepare}. */
export type PrepareResult =
  | { ok: true; handle: ConfHandle }
  | { ok: false; cause: FailureCause; message: string };

/**
 * A parsed conf held by the worker. Each PrepareConf gets its own, even for identical conf
 * strings: state a plugin keeps in its parsed conf (a rate limiter's buckets) belongs to one
 * route.
 */
export interface ConfHandle {
  readonly id: number;
  readonly raw: string;
  /** What the plugin reads on every call with this conf (see `api/prefetch.ts`). */
  prefetch: PrefetchList | null;
}

/** An ExtraInfo answer asked before the call went to the worker. */
interface PrefetchedAnswer {
  question: PrefetchQuestion;
  value: Uint8Array | null;
}

const INFO_CODES = { var: Info.Var, reqBody: Info.ReqBody, respBody: Info.RespBody } as const;

interface PendingCall {
  id: number;
  deadline: number;
  started: number;
  settle(outcome: CallOutcome): void;
  ctx: CallContext;
  /** Written to the current sandbox. */
  sent: boolean;
  /** When it was written to the current sandbox. */
  sentAt: number;
  /** ExtraInfo questions of this call that APISIX has not answered yet. */
  asking: number;
  /** ExtraInfo questions the worker asked during this call. */
  questions: number;
  /** The worker answered; the runner is still reading the answer (in slices). */
  replied: boolean;
  /** Waiting for its prefetched answers before it can be admitted. */
  prefetching: boolean;
  answers: PrefetchedAnswer[] | null;
  /** Waiting for a concurrency slot. */
  queued: boolean;
  confId: number;
  phase: number;
  /** The request payload (see {@linkcode PluginHost.call} on when it is a view). */
  request: Uint8Array;
  overlay: Uint8Array | null;
}

interface PendingConf {
  handle: ConfHandle;
  deadline: number;
  settle(result: ConfResult): void;
  /** Sandboxes that died while this conf was being parsed. */
  deaths: number;
}

// Flow control: batches sent but not yet acknowledged by the worker.
const MAX_BATCHES_IN_FLIGHT = 2;
// A worker may send this many messages that match nothing per second before it is a flood.
const MAX_STRAY_PER_SECOND = 10_000;
// And this many bytes of them: a late answer to a call that timed out may be a large reply, but
// without a bound a worker could make the runner read frames of 64 MiB that answer nothing, as
// fast as the socket carries them, without ever reaching the count above.
const MAX_STRAY_BYTES_PER_SECOND = 64 * 1024 * 1024;
const EMPTY = new Uint8Array();
// Longest text kept from a Failed, ConfFailed or LoadFailed message (the worker cuts its own
// texts shorter).
const MAX_REASON_BYTES = 4096;
/** Longest plugin log line the runner writes, in UTF-8 bytes (the rest is cut). */
export const MAX_LOG_LINE_BYTES = 8192;
// The longest Log message the worker runtime writes: 8,192 UTF-16 units and "…", each at most
// three UTF-8 bytes. A longer one comes from a worker whose runtime was tampered with.
const MAX_LOG_MESSAGE_BYTES = 3 * 8193;
/** Longest variable name a plugin may ask APISIX for, in UTF-8 bytes. */
export const MAX_VAR_NAME_BYTES = 1024;
// Messages of a batch read between two chances to yield to the event loop.
const MESSAGES_PER_STEP = 64;

function cut(bytes: Uint8Array, max: number): string {
  return bytes.length > max ? decodeUtf8(bytes.subarray(0, max)) + "…" : decodeUtf8(bytes);
}

function failure(cause: FailureCause, message: string): CallOutcome {
  return { ok: false, cause, message };
}

/** The runner's side of one plugin. */
export class PluginHost {
  readonly settings: PluginSettings;
  readonly log: Logger;
  readonly counters: OutcomeCounters = new OutcomeCounters();
  readonly latency: Histogram = new Histogram();
  /** Times the plugin's sandbox was started again after it ended. */
  restarts = 0;
  /** Whether the plugin has a requestFilter / responseFilter (known once it loaded). */
  filters = { request: false, response: false };

  #events: HostEvents;
  #link: Link | null = null;
  #unavailable: string | null = null;
  #out = new BatchWriter(4096);
  #batchesInFlight = 0;
  #flushQueued = false;

  #nextCallId = 1;
  #calls = new IdTable<PendingCall>();
  #waiting: PendingCall[] = [];
  #inFlight = 0;

  #nextConfId = 1;
  #confsById = new Map<number, ConfHandle>();
  #confsPending = new Map<number, PendingConf>();

  #deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  #deadlineAt = Infinity;
  #strayWindow = 0;
  #strays = 0;
  #strayBytes = 0;
  #readyWaiter: { resolve(): void; reject(error: Error): void } | null = null;
  // Batches that arrived while an earlier one was still being read (in slices), each with the
  // sandbox generation it came from; null when nothing is being read.
  #inbox: Array<[Uint8Array, number]> | null = null;
  #draining: Promise<void> | null = null;
  // Bumped when a sandbox goes: what it sent and the runner has not read yet is dropped.
  #generation = 0;
  #logGate: LogGate;
  // Lines logged once per failed call share the plugin's console budget, so a plugin that fails
  // every request cannot flood the runner's log.
  #callLines: LineLimiter;

  constructor(settings: PluginSettings, events: HostEvents) {
    this.settings = settings;
    this.#events = events;
    this.log = pluginLogger(settings.name);
    this.#callLines = new LineLimiter(
      () => this.settings.logLinesPerSecond,
      (held, perSecond) =>
        this.log.warn(
          "{held} more failed calls not logged (over {perSecond} lines per second); " +
            "see a6_plugin_calls_total",
          { held, perSecond },
        ),
    );
    this.#logGate = new LogGate(
      () => this.settings.logLinesPerSecond,
      () => this.settings.logBytesPerSecond,
      (lines, bytes) =>
        this.log.warn(
          "dropped {lines} log lines ({bytes} bytes) over the limit of {perSecond} lines and " +
            "{bytesPerSecond} bytes per second",
          {
            lines,
            bytes,
            perSecond: this.settings.logLinesPerSecond,
            bytesPerSecond: this.settings.logBytesPerSecond,
          },
        ),
    );
  }

  /** Calls and conf parses in flight or waiting. */
  /**
   * Whether a line logged on APISIX's behalf for this plugin (a failed call, a conf that could
   * not be prepared) may be written now: such lines share one per-second budget, so a plugin
   * that crash-loops cannot flood the runner's log through them.
   */
  allowCallLine(): boolean {
    return this.#callLines.allow();
  }

  get busy(): number {
    return this.#calls.size + this.#confsPending.size;
  }

  /** Distinct confs held. */
  get confCount(): number {
    return this.#confsById.size;
  }

  /** Whether a sandbox is attached. */
  get attached(): boolean {
    return this.#link !== null;
  }

  // ---- lifecycle (called by the supervisor) ------------------------------------------------

  /** Waits for the worker's Ready (or LoadFailed) message after the sandbox started. */
  waitReady(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#readyWaiter = { resolve, reject };
    });
  }

  /** A sandbox is up: send it every conf this plugin holds, then the queued work. */
  attach(link: Link): void {
    this.#link = link;
    this.#unavailable = null;
    this.#batchesInFlight = 0;
    this.#out.out.reset();
    for (const handle of this.#confsById.values()) this.#sendConf(handle);
    for (const pending of this.#confsPending.values()) {
      if (pending.deadline === Infinity) this.#startConfDeadline(pending);
    }
    for (const call of this.#calls.list()) call.sent = false;
    this.#pump();
    this.#queueFlush();
  }

  /**
   * The sandbox is gone: every call in flight fails with `cause`. Conf parses stay pending: the
   * next sandbox gets every conf again (see {@linkcode attach}), within each parse's deadline.
   * Failing them would make PrepareConf skip the plugin for the route's whole token lifetime
   * because of a restart that is often caused by another route's call.
   */
  detach(cause: FailureCause, message: string): void {
    this.#link = null;
    this.#generation++;
    // The next sandbox starts with flood limits of its own: the replayed confs' answers are
    // strays, and must not finish off a fresh sandbox for what the last one sent.
    this.#strayWindow = 0;
    this.#strays = 0;
    this.#strayBytes = 0;
    this.#readyWaiter?.reject(new Error(message));
    this.#readyWaiter = null;
    const sent = this.#calls.list().filter((call) => call.sent);
    for (const call of sent) this.#settleCall(call, failure(cause, message));
    // A conf parse in flight waits for the next sandbox, which gets every conf again: failing
    // it would leave the plugin out of its routes because another call crashed the sandbox.
    // If the next sandbox dies under it too, the conf itself is the likely cause.
    for (const [id, pending] of this.#confsPending) {
      if (++pending.deaths < 2) continue;
      this.#confsPending.delete(id);
      pending.settle({ ok: false, cause, message });
    }
  }

  /** The sandbox could not start: every conf parse waiting for it fails with `cause`. */
  failPendingConfs(cause: FailureCause, message: string): void {
    for (const [id, pending] of this.#confsPending) {
      this.#confsPending.delete(id);
      pending.settle({ ok: false, cause, message });
    }
  }

  /** Answers every call at once (the plugin keeps crashing) until the next attach. */
  markUnavailable(reason: string): void {
    this.#unavailable = reason;
    for (const call of this.#calls.list()) {
      this.#settleCall(call, failure("unavailable", reason));
    }
    for (const [id, pending] of this.#confsPending) {
      this.#confsPending.delete(id);
      pending.settle({ ok: false, cause: "unavailable", message: reason });
    }
  }

  /** Ends a period of unavailability: the next use starts the sandbox again. */
  clearUnavailable(): void {
    this.#unavailable = null;
  }

  // ---- confs ---------------------------------------------------------------------------

  /** Parses a conf in the plugin's sandbox; resolves to its handle or why it cannot be used. */
  async prepare(raw: string): Promise<PrepareResult> {
    if (this.#unavailable) {
      this.counters.add("unavailable");
      return { ok: false, cause: "unavailable", message: this.#unavailable };
    }
    const handle: ConfHandle = { id: this.#nextConfId++, raw, prefetch: null };
    if (this.#nextConfId > MAX_TABLE_ID) this.#nextConfId = 1;
    this.#confsById.set(handle.id, handle);
    const result = await new Promise<ConfResult>((settle) => {
      // parseConf's deadline starts when the conf reaches a running sandbox: a cold start
      // (bounded by the supervisor) must not reject the conf, which would leave the route
      // without the plugin.
      const pending: PendingConf = { handle, deadline: Infinity, settle, deaths: 0 };
      this.#confsPending.set(handle.id, pending);
      if (this.#link) {
        this.#startConfDeadline(pending);
        this.#sendConf(handle);
      } else this.#events.wake(this);
    });
    if (result.ok) {
      handle.prefetch = result.prefetch;
      return { ok: true, handle };
    }
    this.#confsById.delete(handle.id);
    this.counters.add(result.cause);
    return result;
  }

  /** Frees a conf in the worker (its token expired or was evicted). */
  release(handle: ConfHandle): void {
    if (!this.#confsById.delete(handle.id)) return;
    if (this.#link) {
      this.#out.begin(Kind.DropConf).u32(handle.id);
      this.#out.end();
      this.#queueFlush();
    }
  }

  #startConfDeadline(pending: PendingConf): void {
    pending.deadline = performance.now() + this.settings.timeoutMs;
    this.#armDeadline(pending.deadline);
  }

  #sendConf(handle: ConfHandle): void {
    this.#out.begin(Kind.Conf).u32(handle.id).rawUtf8(handle.raw);
    this.#out.end();
    this.#queueFlush();
  }

  // ---- calls ---------------------------------------------------------------------------

  /**
   * Runs the plugin's filter for one request (`phase` 0) or response (`phase` 1). `request` is
   * the verified payload APISIX sent (it may be a view of a buffer the caller reuses once this
   * returns: it is copied if it cannot be sent at once), `overlay` the merged patch of earlier
   * plugins, encoded, and `earlier` the same patch (a body it replaced is not prefetched).
   */
  call(
    conf: ConfHandle,
    phase: number,
    request: Uint8Array,
    overlay: Uint8Array | null,
    ctx: CallContext,
    earlier: Patch | null = null,
  ): Promise<CallOutcome> {
    if (this.#unavailable) {
      this.counters.add("unavailable");
      return Promise.resolve(failure("unavailable", this.#unavailable));
    }
    const id = this.#nextCallId++;
    if (this.#nextCallId > MAX_TABLE_ID) this.#nextCallId = 1;
    const started = performance.now();
    return new Promise((settle) => {
      const call: PendingCall = {
        id,
        deadline: started + this.settings.timeoutMs,
        started,
        settle,
        ctx,
        sent: false,
        sentAt: 0,
        asking: 0,
        questions: 0,
        replied: false,
        prefetching: false,
        answers: null,
        queued: false,
        confId: conf.id,
        phase,
        request,
        overlay,
      };
      this.#calls.set(id, call);
      this.#armDeadline(call.deadline);
      if (conf.prefetch) this.#prefetch(call, conf.prefetch, earlier);
      else this.#admit(call, started);
      // `request` may be a view of the connection's read buffer, valid only until the caller
      // reads again: a call that waits keeps a copy. A prefetching call takes the call's own
      // copy, made before APISIX was first asked, once its answers are in.
      if (!call.sent && !call.prefetching) call.request = request.slice();
    });
  }

  // `now` is passed down from a caller that just read the clock: one read less per call.
  #admit(call: PendingCall, now?: number): void {
    if (this.#inFlight < this.settings.concurrency) this.#send(call, now);
    else {
      call.queued = true;
      this.#waiting.push(call);
    }
  }

  /** Asks APISIX what the conf declared, then admits the call with the answers. */
  #prefetch(call: PendingCall, list: PrefetchList, earlier: Patch | null): void {
    const response = call.phase === Phase.Response;
    const replaced = (response ? earlier?.responseBody : earlier?.requestBody) != null;
    const questions = prefetchQuestions(list, response, replaced);
    if (!questions.length) return this.#admit(call);
    call.prefetching = true;
    call.asking = questions.length;
    Promise.all(questions.map(([info, name]) => call.ctx.ask(info, name))).then((values) => {
      call.asking = 0;
      call.prefetching = false;
      // Settled meanwhile: a deadline while APISIX answered, or the client went away.
      if (!this.#calls.has(call.id)) return;
      call.answers = questions.map((question, i) => ({ question, value: values[i]! }));
      call.request = call.ctx.request;
      this.#admit(call);
    }, () => {
      // The connection failed; the connection handler abandons the call.
      call.asking = 0;
      call.prefetching = false;
    });
  }

  /** Abandons a call whose client went away; its outcome is dropped. */
  cancel(promiseOwner: CallContext): void {
    for (const call of this.#calls.list()) {
      if (call.ctx !== promiseOwner) continue;
      this.#settleCall(call, failure("error", "the client went away"), false);
      this.#sendCancel(call);
      return;
    }
  }

  #send(call: PendingCall, now?: number): void {
    this.#inFlight++;
    if (!this.#link) {
      this.#events.wake(this);
      return;
    }
    this.#write(call, now);
    this.#queueFlush();
  }

  #write(call: PendingCall, now: number = performance.now()): void {
    call.sent = true;
    call.sentAt = now;
    const out = this.#out;
    const w = out.begin(Kind.Call).u32(call.id).u32(call.confId).u8(call.phase).bytes(call.request);
    const answers = call.answers;
    w.u8(answers?.length ?? 0);
    for (const { question: [info, name], value } of answers ?? []) {
      w.u8(INFO_CODES[info]).utf8u16(name);
      w.u8(value === null ? 0 : 1).bytes(value ?? EMPTY);
    }
    if (call.overlay) w.raw(call.overlay);
    out.end();
  }

  #sendCancel(call: PendingCall): void {
    if (!call.sent || !this.#link) return;
    this.#out.begin(Kind.Cancel).u32(call.id);
    this.#out.end();
    this.#queueFlush();
  }

  /** Sends calls that were admitted while no sandbox was attached. */
  #pump(): void {
    for (const call of this.#calls.list()) {
      if (!call.sent && !call.queued && !call.prefetching) this.#write(call);
    }
  }

  #settleCall(call: PendingCall, outcome: CallOutcome, count = true): void {
    if (!this.#calls.delete(call.id)) return;
    if (call.queued) this.#waiting.splice(this.#waiting.indexOf(call), 1);
    else {
      this.#inFlight--;
      const next = this.#waiting.shift();
      if (next) {
        next.queued = false;
        this.#send(next);
      }
    }
    if (count) {
      this.counters.add(outcome.ok ? "ok" : outcome.cause);
      this.latency.observe(performance.now() - call.started);
    }
    call.settle(outcome);
  }

  // ---- deadlines -------------------------------------------------------------------------

  #armDeadline(at: number): void {
    if (at >= this.#deadlineAt) return;
    if (this.#deadlineTimer !== undefined) clearTimeout(this.#deadlineTimer);
    this.#deadlineAt = at;
    this.#deadlineTimer = setTimeout(
      () => this.#checkDeadlines(),
      Math.max(0, at - performance.now()),
    );
  }

  #checkDeadlines(): void {
    this.#deadlineTimer = undefined;
    this.#deadlineAt = Infinity;
    const now = performance.now();
    let expired: string | null = null;
    // Every pass settles (removes) the oldest call, or stops at the first one still in time.
    for (let call = this.#calls.oldest(); call; call = this.#calls.oldest()) {
      // Calls are in admission order and share one timeout, so the first live one is oldest.
      if (call.deadline > now) {
        this.#armDeadline(call.deadline);
        break;
      }
      const waiting = call.asking > 0 ? " while waiting for APISIX's answer" : "";
      const message = `call exceeded its deadline of ${this.settings.timeoutMs} ms${waiting}`;
      const wasSent = call.sent;
      // A call still waiting for its prefetched answers timed out on APISIX, not the sandbox.
      const onApisix = call.prefetching;
      this.#settleCall(
        call,
        failure(this.#link || wasSent || onApisix ? "timeout" : "unavailable", message),
      );
      if (onApisix && this.#callLines.allow()) {
        this.log.warn("{message}: the call never reached the plugin", { message });
      }
      if (!wasSent || !this.#link) continue;
      // A call waiting for APISIX (a slow client body, say) says nothing about the worker:
      // cancel it alone rather than kill the sandbox and every other call in it.
      if (waiting) {
        if (this.#callLines.allow()) {
          this.log.warn("{message}: the call alone is cancelled", { message });
        }
        this.#sendCancel(call);
      } else if (call.replied) {
        // The worker answered in time; reading its large answer took the runner past the
        // deadline: nothing to kill.
      } else if (now - call.sentAt >= this.settings.timeoutMs / 2) {
        expired = message;
      } else {
        // Sent moments ago after waiting for a restart or a free slot: this says nothing about
        // the worker (killing for it made a restarted sandbox die again at once).
        this.#sendCancel(call);
      }
    }
    for (const [id, pending] of this.#confsPending) {
      if (pending.deadline > now) {
        this.#armDeadline(pending.deadline);
        break;
      }
      this.#confsPending.delete(id);
      const message = `parseConf exceeded the deadline of ${this.settings.timeoutMs} ms`;
      pending.settle({ ok: false, cause: "timeout", message });
      if (this.#link) expired = message;
    }
    // A worker that overran a deadline may be stuck in a loop no message can interrupt.
    if (expired) this.#events.kill(this, "timeout", expired);
  }

  // ---- batches -------------------------------------------------------------------------

  #queueFlush(): void {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => this.#flush());
  }

  #flush(): void {
    this.#flushQueued = false;
    if (!this.#link || this.#out.length === 0) return;
    if (this.#batchesInFlight >= MAX_BATCHES_IN_FLIGHT) return;
    this.#batchesInFlight++;
    // A view of the batch buffer, reset right after: the carrier copies what it keeps.
    this.#link(this.#out.out.view());
    this.#out.out.reset();
  }

  /**
   * Handles a batch from the worker; anything malformed makes the supervisor kill it. A batch is
   * read in slices (see `slicer.ts`): while one is being read, later ones wait in order, and
   * the returned promise (undefined when the batch was read at once) resolves when they all
   * are; the carrier reads no more from the sandbox until then.
   */
  receive(batch: Uint8Array): Promise<void> | undefined {
    if (this.#inbox) {
      this.#inbox.push([batch, this.#generation]);
      return this.#draining!;
    }
    const done = slicer.run(this.#read(batch, this.#generation));
    if (!(done instanceof Promise)) return undefined;
    this.#inbox = [];
    return this.#draining = this.#drain(done);
  }

  async #drain(first: Promise<void>): Promise<void> {
    await first;
    for (let next = this.#inbox!.shift(); next; next = this.#inbox!.shift()) {
      await slicer.run(this.#read(next[0], next[1]));
    }
    this.#inbox = null;
    this.#draining = null;
  }

  *#read(batch: Uint8Array, generation: number): Steps<void> {
    if (generation !== this.#generation) return;
    try {
      // An empty batch carries nothing: a stream of them is a flood like any other.
      if (batch.length === 0) this.#stray(0);
      let count = 0;
      for (const [kind, body] of messagesOf(batch)) {
        yield* this.#message(kind, body);
        // The sandbox was killed meanwhile: the rest of what it sent is not read.
        if (generation !== this.#generation) return;
        if (++count % MESSAGES_PER_STEP === 0) yield;
      }
    } catch (error) {
      if (generation !== this.#generation) return;
      const message = `protocol violation: ${(error as Error).message}`;
      this.#events.kill(this, "violation", message);
    }
  }

  *#message(kind: number, body: ByteReader): Steps<void> {
    // What a message that answers nothing cost the runner to read, for the flood limits.
    const length = body.remaining;
    switch (kind) {
      case Kind.Result: {
        const call = this.#calls.get(body.u32());
        if (!call || !call.sent) return this.#stray(length);
        const bytes = body.rest();
        call.replied = true;
        // Lengths and counts first: a patch over the limits is refused before it costs more.
        const size = yield* scanPatch(bytes, call.phase === Phase.Response, MAX_PAYLOAD);
        if (size.over) return this.#refuse(call, `its patch ${size.over}`);
        const patch = yield* Patch.decodeSteps(bytes);
        // Settled while it was decoded (a deadline, the client went away).
        if (this.#calls.get(call.id) !== call) return;
        this.#settleCall(call, { ok: true, patch, size });
        return;
      }
      case Kind.Failed: {
        const call = this.#calls.get(body.u32());
        const cause = body.u8();
        const text = cut(body.rest(), MAX_REASON_BYTES);
        if (!call || !call.sent) return this.#stray(length);
        if (cause === FailCause.UnknownConf) {
          this.#settleCall(call, failure("bad_conf", "the conf was rejected by parseConf"));
        } else {
          if (this.#callLines.allow()) {
            this.log.warn("call failed: {reason}", {
              reason: text.split("\n")[0]!,
              error: text,
            });
          }
          this.#settleCall(
            call,
            failure(cause === FailCause.Denied ? "denied" : "error", text.split("\n")[0]!),
          );
        }
        return;
      }
      case Kind.Ask:
        return this.#ask(body.u32(), body.u32(), body.u8(), body.rest());
      case Kind.Ack:
        if (this.#batchesInFlight === 0) throw new ByteFormatError("acknowledged no batch");
        this.#batchesInFlight--;
        if (this.#out.length) this.#queueFlush();
        return;
      case Kind.ConfOk:
      case Kind.ConfFailed: {
        const id = body.u32();
        const pending = this.#confsPending.get(id);
        if (!pending) {
          this.#stray(length);
          const reason = kind === Kind.ConfFailed ? cut(body.rest(), MAX_REASON_BYTES) : "";
          // A conf replayed into a restarted sandbox: drop it if it no longer parses.
          const handle = this.#confsById.get(id);
          if (kind === Kind.ConfFailed && handle) {
            this.log.warn("a conf no longer parses after a restart: {reason}", { reason });
            this.counters.add("bad_conf");
            this.#confsById.delete(handle.id);
          }
          return;
        }
        // Read before the parse is taken off the list: a malformed list is a violation that
        // kills the sandbox, and the parse must wait for the next one, not hang.
        const result: ConfResult = kind === Kind.ConfOk
          ? { ok: true, prefetch: readPrefetch(body) }
          : { ok: false, cause: "bad_conf", message: cut(body.rest(), MAX_REASON_BYTES) };
        this.#confsPending.delete(id);
        pending.settle(result);
        return;
      }
      case Kind.Log: {
        // Every log message counts towards the flood limit, also the ones dropped below.
        this.#stray(0);
        const level = body.u8();
        if (body.remaining > MAX_LOG_MESSAGE_BYTES) {
          throw new ByteFormatError(
            `a log message of ${body.remaining} bytes, longer than any the worker runtime writes`,
          );
        }
        // A dropped line was read for nothing: its bytes count towards the flood limit.
        if (!this.#logGate.allow(Math.min(body.remaining, MAX_LOG_LINE_BYTES))) {
          return this.#stray(length);
        }
        const line = cut(body.rest(), MAX_LOG_LINE_BYTES);
        if (level === LogLevel.Error) this.log.error(line);
        else if (level === LogLevel.Warn) this.log.warn(line);
        else if (level === LogLevel.Info) this.log.info(line);
        else this.log.debug(line);
        return;
      }
      case Kind.Ready: {
        if (!this.#readyWaiter) return this.#stray(length);
        const flags = body.u8();
        this.filters = { request: (flags & 1) !== 0, response: (flags & 2) !== 0 };
        this.#readyWaiter.resolve();
        this.#readyWaiter = null;
        return;
      }
      case Kind.LoadFailed: {
        if (!this.#readyWaiter) return this.#stray(length);
        const reason = cut(body.rest(), MAX_REASON_BYTES);
        this.#readyWaiter.reject(new Error(reason));
        this.#readyWaiter = null;
        return;
      }
      default:
        throw new ByteFormatError(`unknown message kind ${kind}`);
    }
  }

  /** Logs (within the per-call line limit) that a call of this plugin was refused. */
  refused(message: string): void {
    if (this.#callLines.allow()) {
      this.log.warn("{message}; nothing was sent to APISIX", { message });
    }
  }

  /**
   * Fails one call for what the plugin sent in it (over a limit): its own error, logged; the
   * sandbox and its other calls are untouched, and the worker drops the call if it still runs.
   */
  #refuse(call: PendingCall, reason: string): void {
    const message = `the call was refused: ${reason}`;
    this.refused(message);
    this.#settleCall(call, failure("error", message));
    this.#sendCancel(call);
  }

  /**
   * Counts a message that answers nothing (or a log message: every one counts, and a dropped
   * one's `bytes` too); past the limits per second, a ByteFormatError ends the sandbox. Every
   * other message is bounded by the calls in flight; these only by what the runner is willing
   * to read for nothing. Results for calls already answered (deadline, client gone) are normal
   * in small numbers.
   */
  #stray(bytes: number): void {
    const now = performance.now();
    if (now - this.#strayWindow > 1000) {
      this.#strayWindow = now;
      this.#strays = 0;
      this.#strayBytes = 0;
    }
    const limit = Math.max(MAX_STRAY_PER_SECOND, 2 * this.settings.logLinesPerSecond);
    if (++this.#strays > limit) throw new ByteFormatError("message flood");
    this.#strayBytes += bytes;
    if (this.#strayBytes > MAX_STRAY_BYTES_PER_SECOND) {
      throw new ByteFormatError(
        `message flood: more than ${MAX_STRAY_BYTES_PER_SECOND >> 20} MiB in a second of ` +
          "messages that answer nothing",
      );
    }
  }

  #ask(callId: number, askId: number, info: number, nameBytes: Uint8Array): void {
    const call = this.#calls.get(callId);
    if (!call || !call.sent) return this.#stray(nameBytes.length);
    const kind = info === Info.Var
      ? "var"
      : info === Info.ReqBody
      ? "reqBody"
      : info === Info.RespBody
      ? "respBody"
      : null;
    if (!kind) throw new ByteFormatError(`unknown ExtraInfo kind ${info}`);
    const limit = this.settings.maxQuestionsPerCall;
    if (++call.questions > limit) {
      return this.#refuse(
        call,
        `it asked more than ${limit} ExtraInfo questions (maxQuestionsPerCall)`,
      );
    }
    if (nameBytes.length > MAX_VAR_NAME_BYTES) {
      return this.#refuse(
        call,
        `it asked for a variable name of ${nameBytes.length} bytes, more than ${MAX_VAR_NAME_BYTES}`,
      );
    }
    const name = decodeUtf8(nameBytes);
    call.asking++;
    call.ctx.ask(kind, name).then((answer) => {
      call.asking--;
      if (!this.#calls.has(callId) || !this.#link) return;
      const w = this.#out.begin(Kind.Answer).u32(callId).u32(askId).u8(answer === null ? 0 : 1);
      if (answer) w.raw(answer);
      this.#out.end();
      this.#queueFlush();
    }, () => {
      // The connection failed; the connection handler abandons the call.
      call.asking--;
    });
  }
}
