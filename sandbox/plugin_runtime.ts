/**
 * The plugin runtime: loads one plugin module, then serves batches of messages (see
 * `messages.ts`) by parsing confs and running filters over lazily decoded request views. It
 * runs in a sandbox's Web Worker (`plugin_worker.ts` wraps it with the hardening, the console
 * capture and the channel) or, for trusted `isolation: "inline"` plugins, on the runner's own
 * event loop (`runner/sandboxes/inline_carrier.ts`), where batches are handed over by a plain call.
 *
 * @module
 */
import { ByteFormatError, type ByteReader, decodeUtf8 } from "../api/bytes.ts";
import { assertPlugin, defaultParseConf } from "../api/define.ts";
import { Patch } from "../api/patch.ts";
import { checkPrefetch, writePrefetch } from "../api/prefetch.ts";
import type { Plugin } from "../api/types.ts";
import { type CallHost, RequestView, ResponseWriter, UpstreamResponseView } from "../api/views.ts";
import { HttpReqCallReq } from "../protocol/gen/http_req_call_req.ts";
import { HttpRespCallReq } from "../protocol/gen/http_resp_call_req.ts";
import { byteBuffer } from "../protocol/byte_buffer.ts";
import type { PluginLog } from "./console_capture.ts";
import { IdTable } from "./id_table.ts";
import { BatchWriter, FailCause, Info, Kind, LogLevel, Phase, readMessages } from "./messages.ts";

/** What a plugin runtime is told before it loads its plugin. */
export interface WorkerInit {
  /** URL of the plugin module. */
  module: string;
  /** The name the runner's configuration gives the plugin. */
  name: string;
  /** Most log lines per second before lines are dropped (and counted). */
  logLinesPerSecond: number;
}

/**
 * Where a runtime's batches go. The batch is a view of the runtime's write buffer, valid only
 * during the call: copy it before anything else can run (the sandbox's channel writer copies
 * it into its own buffer, the inline carrier slices it).
 */
export type PostBatch = (batch: Uint8Array) => void;

/**
 * Makes the plugin's rate-limited log from a sink of log lines: in a worker the sink is the
 * console capture, inline a limiter alone (see `console_capture.ts`).
 */
export type LogFactory = (emit: (level: number, line: string) => void) => PluginLog;

const INTERNAL_FRAME =
  /^\s+at .*(?:\/sandbox\/(?:plugin_worker|plugin_runtime|messages)\.ts:|\bext:)/;

/** ExtraInfo answers that came with a call, by `var:<name>`, `reqBody` or `respBody`. */
type Prefetched = Map<string, Uint8Array | null>;

interface PendingAsk {
  resolve(value: Uint8Array | null): void;
  reject(error: Error): void;
}

const INFO_KEYS: Record<number, string> = {
  [Info.ReqBody]: "reqBody",
  [Info.RespBody]: "respBody",
};

function readPrefetched(body: ByteReader): Prefetched | null {
  const count = body.u8();
  if (count === 0) return null;
  const answers: Prefetched = new Map();
  for (let i = 0; i < count; i++) {
    const info = body.u8();
    const name = decodeUtf8(body.raw(body.u16()));
    const present = body.u8() === 1;
    // The batch buffer is this message's own (transferred, or handed over), so a view is safe.
    const value = body.bytesView();
    answers.set(info === Info.Var ? `var:${name}` : INFO_KEYS[info] ?? "", present ? value : null);
  }
  return answers;
}

/** One call in a runtime: the plugin's CallHost, and where its outcome goes. */
class RuntimeCall implements CallHost {
  readonly id: number;
  cancelled = false;
  #runtime: PluginRuntime;
  #asks: Map<number, PendingAsk> | null = null;
  #nextAsk = 0;
  #prefetched: Prefetched | null;
  #req: RequestView | null = null;
  #res: ResponseWriter | UpstreamResponseView | null = null;

  constructor(runtime: PluginRuntime, id: number, prefetched: Prefetched | null) {
    this.#runtime = runtime;
    this.id = id;
    this.#prefetched = prefetched;
  }

  ask(info: "var" | "reqBody" | "respBody", name?: string): Promise<Uint8Array | null> {
    if (this.cancelled) return Promise.reject(new Error("the call was already answered"));
    const key = info === "var" ? `var:${name}` : info;
    if (this.#prefetched?.has(key)) return Promise.resolve(this.#prefetched.get(key)!);
    const askId = this.#nextAsk++;
    const code = info === "var" ? Info.Var : info === "reqBody" ? Info.ReqBody : Info.RespBody;
    const out = this.#runtime.out;
    out.begin(Kind.Ask).u32(this.id).u32(askId).u8(code).rawUtf8(name ?? "");
    out.end();
    this.#runtime.queueFlush();
    return new Promise((resolve, reject) => {
      (this.#asks ??= new Map()).set(askId, { resolve, reject });
    });
  }

  warn(message: string): void {
    // Under the same per-second limit as the plugin's console.
    this.#runtime.log.line(LogLevel.Warn, message);
  }

  answer(askId: number, value: Uint8Array | null): void {
    const pending = this.#asks?.get(askId);
    if (!pending) return;
    this.#asks!.delete(askId);
    pending.resolve(value);
  }

  cancel(): void {
    this.cancelled = true;
    for (const ask of this.#asks?.values() ?? []) {
      ask.reject(new Error("the call was already answered"));
    }
  }

  /** Runs the filter; the outcome is written when it settles. */
  run(
    plugin: Plugin<unknown>,
    conf: unknown,
    phase: number,
    request: Uint8Array,
    overlay: Patch | null,
  ): void {
    const bb = byteBuffer(request);
    let result: void | Promise<void>;
    if (phase === Phase.Request) {
      const req = new RequestView(HttpReqCallReq.getRootAsHttpReqCallReq(bb), overlay, this);
      const res = new ResponseWriter(overlay, this);
      this.#req = req;
      this.#res = res;
      result = plugin.requestFilter?.(conf, req, res);
    } else {
      const res = new UpstreamResponseView(
        HttpRespCallReq.getRootAsHttpRespCallReq(bb),
        overlay,
        this,
      );
      this.#res = res;
      result = plugin.responseFilter?.(conf, res);
    }
    if (result instanceof Promise) {
      result.then(() => this.#done(), (error) => this.fail(error)).then(this.#runtime.queueFlush);
    } else {
      this.#done();
    }
  }

  #done(): void {
    try {
      const patch = new Patch();
      this.#req?.collect(patch);
      this.#res!.collect(patch);
      this.#runtime.calls.delete(this.id);
      if (this.cancelled) return;
      const out = this.#runtime.out;
      out.begin(Kind.Result).u32(this.id);
      patch.encode(out.out);
      out.end();
    } catch (error) {
      // Encoding threw half-way (a list over the limits, a value whose getter throws): drop the
      // half-written message, so that the batch stays well formed and only this call fails.
      this.#runtime.out.abort();
      this.fail(error);
    }
  }

  fail(error: unknown): void {
    this.#runtime.calls.delete(this.id);
    if (this.cancelled) return;
    let cause: number = FailCause.Error;
    try {
      if (
        error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
      ) {
        cause = FailCause.Denied;
      }
    } catch {
      // A proxy whose prototype trap throws: an error like any other.
    }
    const text = this.#runtime.errorText(error).slice(0, 4096);
    const out = this.#runtime.out;
    out.begin(Kind.Failed).u32(this.id).u8(cause).rawUtf8(text);
    out.end();
  }
}

/** One plugin's runtime: its confs, its calls, and the batch it is writing. */
export class PluginRuntime {
  /** The batch being written; flushed to `post` in a microtask. */
  readonly out: BatchWriter = new BatchWriter(4096);
  /** Calls in progress. */
  readonly calls: IdTable<RuntimeCall> = new IdTable<RuntimeCall>();
  /** The plugin's log (console lines and `ctx.warn`), limited per second. */
  readonly log: PluginLog;

  #post: PostBatch;
  #flushQueued = false;
  #started = false;
  #plugin: Plugin<unknown> | undefined;
  #pluginName = "";
  #confs = new Map<number, unknown>();
  // Conf parses in progress. A restarted sandbox gets every conf replayed and the calls that
  // queued meanwhile in one batch, so a call may arrive before its conf is parsed: it waits.
  #parsing = new Map<number, Promise<void>>();

  constructor(post: PostBatch, makeLog: LogFactory) {
    this.#post = post;
    this.log = makeLog((level, line) => {
      this.out.begin(Kind.Log).u8(level).rawUtf8(line);
      this.out.end();
      this.queueFlush();
    });
  }

  /** Whether {@linkcode load} was called. */
  get started(): boolean {
    return this.#started;
  }

  /** Sends what was written, in a microtask, once per turn. */
  readonly queueFlush = (): void => {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(this.#flush);
  };

  #flush = (): void => {
    this.#flushQueued = false;
    if (this.out.length === 0) return;
    const batch = this.out.out.view();
    this.out.out.reset();
    this.#post(batch);
  };

  /** An error as the plugin's author wants to read it: without the runtime's own frames. */
  errorText(error: unknown): string {
    let text: string;
    try {
      text = error instanceof Error
        ? (error.stack ?? `${error.name}: ${error.message}`)
        : String(error);
    } catch {
      return "an error that could not be printed";
    }
    // Frames of the runner's own runtime code and of Deno say nothing about the plugin.
    text = text.split("\n").filter((line) => !INTERNAL_FRAME.test(line)).join("\n");
    // Deno's hint speaks to someone running a script; an operator grants permissions in the
    // runner's configuration instead.
    return text.replace(
      /, run again with the --allow-([a-z]+) flag/g,
      (_, kind: string) =>
        `: the runner configuration does not grant it (plugins.${this.#pluginName}.permissions.${kind})`,
    );
  }

  /** Loads the plugin module and answers Ready or LoadFailed. */
  async load(init: WorkerInit): Promise<void> {
    this.#started = true;
    this.log.setLimit(init.logLinesPerSecond);
    this.#pluginName = init.name;
    const out = this.out;
    try {
      const module = await import(init.module);
      const candidate = module.default;
      assertPlugin(candidate);
      if (candidate.name !== init.name) {
        throw new TypeError(
          `the module's plugin is named ${JSON.stringify(candidate.name)}, ` +
            `but the configuration calls it ${JSON.stringify(init.name)}`,
        );
      }
      this.#plugin = candidate;
      const flags = (candidate.requestFilter ? 1 : 0) | (candidate.responseFilter ? 2 : 0);
      out.begin(Kind.Ready).u8(flags).rawUtf8(candidate.name);
    } catch (error) {
      const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      out.begin(Kind.LoadFailed).rawUtf8(text.slice(0, 4096));
    }
    out.end();
    this.#flush();
  }

  /** Serves one batch from the runner; throws ByteFormatError if it is malformed. */
  receive(batch: Uint8Array): void {
    readMessages(batch, (kind, body) => {
      switch (kind) {
        case Kind.Call:
          this.#startCall(body);
          break;
        case Kind.Answer:
          this.#answer(body);
          break;
        case Kind.Cancel:
          this.#cancel(body.u32());
          break;
        case Kind.Conf: {
          const confId = body.u32();
          const parse = this.#parseConf(confId, decodeUtf8(body.rest()));
          this.#parsing.set(confId, parse);
          parse.then(() => {
            if (this.#parsing.get(confId) === parse) this.#parsing.delete(confId);
          });
          break;
        }
        case Kind.DropConf:
          this.#confs.delete(body.u32());
          break;
        default:
          throw new ByteFormatError(`unexpected message kind ${kind}`);
      }
    });
    this.out.begin(Kind.Ack);
    this.out.end();
    this.queueFlush();
  }

  #startCall(body: ByteReader): void {
    const callId = body.u32();
    const confId = body.u32();
    const phase = body.u8();
    const request = body.raw(body.u32());
    const prefetched = readPrefetched(body);
    const overlayBytes = body.rest();
    const parse = this.#confs.has(confId) ? undefined : this.#parsing.get(confId);
    if (!parse) return this.#runCall(callId, confId, phase, request, prefetched, overlayBytes);
    parse.then(() => {
      this.#runCall(callId, confId, phase, request, prefetched, overlayBytes);
      this.queueFlush();
    });
  }

  #runCall(
    callId: number,
    confId: number,
    phase: number,
    request: Uint8Array,
    prefetched: Prefetched | null,
    overlayBytes: Uint8Array,
  ): void {
    if (!this.#confs.has(confId)) {
      this.out.begin(Kind.Failed).u32(callId).u8(FailCause.UnknownConf).rawUtf8(
        `no conf ${confId}`,
      );
      this.out.end();
      return;
    }
    const call = new RuntimeCall(this, callId, prefetched);
    this.calls.set(callId, call);
    try {
      const overlay = overlayBytes.length ? Patch.decode(overlayBytes) : null;
      call.run(this.#plugin!, this.#confs.get(confId), phase, request, overlay);
    } catch (error) {
      call.fail(error);
    }
  }

  #answer(body: ByteReader): void {
    const call = this.calls.get(body.u32());
    const askId = body.u32();
    const present = body.u8() === 1;
    // The batch buffer is this message's own (transferred, or handed over), so a view is safe.
    call?.answer(askId, present ? body.rest() : null);
  }

  #cancel(callId: number): void {
    const call = this.calls.get(callId);
    if (!call) return;
    this.calls.delete(callId);
    call.cancel();
  }

  async #parseConf(confId: number, raw: string): Promise<void> {
    const plugin = this.#plugin!;
    try {
      const conf = plugin.parseConf ? await plugin.parseConf(raw) : defaultParseConf(raw);
      const prefetch = checkPrefetch(plugin.prefetch?.(conf));
      this.#confs.set(confId, conf);
      writePrefetch(this.out.begin(Kind.ConfOk).u32(confId), prefetch);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.out.begin(Kind.ConfFailed).u32(confId).rawUtf8(reason.slice(0, 2048));
    }
    this.out.end();
    this.queueFlush();
  }
}
