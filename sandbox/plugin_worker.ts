/**
 * The entry module of a plugin's Web Worker. It hardens the worker scope, captures console
 * output, loads the plugin module named by the first message, then serves batches of messages
 * (see `messages.ts`): parsing confs and running filters over lazily decoded request views.
 *
 * @module
 */
import { harden } from "./harden.ts";
import { IdTable } from "./id_table.ts";
// Loaded here so that plugins importing the API find it already loaded: a plugin's worker may
// read only the plugin's own directory.
import "../mod.ts";
import { ByteFormatError, type ByteReader, decodeUtf8 } from "../api/bytes.ts";
import { assertPlugin, defaultParseConf } from "../api/define.ts";
import { Patch } from "../api/patch.ts";
import { checkPrefetch, writePrefetch } from "../api/prefetch.ts";
import type { Plugin } from "../api/types.ts";
import { type CallHost, RequestView, ResponseWriter, UpstreamResponseView } from "../api/views.ts";
import { HttpReqCallReq } from "../protocol/gen/http_req_call_req.ts";
import { HttpRespCallReq } from "../protocol/gen/http_resp_call_req.ts";
import { ByteBuffer } from "flatbuffers";
import { BatchWriter, FailCause, Info, Kind, LogLevel, Phase, readMessages } from "./messages.ts";
import { captureConsole } from "./console_capture.ts";

/** The first message a plugin worker receives. */
export interface WorkerInit {
  /** URL of the plugin module. */
  module: string;
  /** The name the runner's configuration gives the plugin. */
  name: string;
  /** Most log lines per second before lines are dropped (and counted). */
  logLinesPerSecond: number;
}

const caps = harden();

const out = new BatchWriter(4096);
let flushQueued = false;

function flush(): void {
  flushQueued = false;
  if (out.length === 0) return;
  const batch = out.take();
  caps.post(batch.buffer, [batch.buffer]);
}

function queueFlush(): void {
  if (flushQueued) return;
  flushQueued = true;
  queueMicrotask(flush);
}

const pluginLog = captureConsole(caps.inspect, (level, line) => {
  out.begin(Kind.Log).u8(level).rawUtf8(line);
  out.end();
  queueFlush();
});

let plugin: Plugin<unknown> | undefined;
let pluginName = "";
const confs = new Map<number, unknown>();

interface PendingAsk {
  resolve(value: Uint8Array | null): void;
  reject(error: Error): void;
}

const calls = new IdTable<WorkerCall>();

const INTERNAL_FRAME = /^\s+at .*(?:\/sandbox\/(?:plugin_worker|messages)\.ts:|\bext:)/;

function errorText(error: unknown): string {
  let text: string;
  try {
    text = error instanceof Error
      ? (error.stack ?? `${error.name}: ${error.message}`)
      : String(error);
  } catch {
    return "an error that could not be printed";
  }
  // Frames of the runner's own worker code and of the runtime say nothing about the plugin.
  text = text.split("\n").filter((line) => !INTERNAL_FRAME.test(line)).join("\n");
  // Deno's hint speaks to someone running a script; an operator grants permissions in the
  // runner's configuration instead.
  return text.replace(
    /, run again with the --allow-([a-z]+) flag/g,
    (_, kind: string) =>
      `: the runner configuration does not grant it (plugins.${pluginName}.permissions.${kind})`,
  );
}

/** ExtraInfo answers that came with a call, by `var:<name>`, `reqBody` or `respBody`. */
type Prefetched = Map<string, Uint8Array | null>;

/** One call in this worker: the plugin's CallHost, and where its outcome goes. */
class WorkerCall implements CallHost {
  readonly id: number;
  cancelled = false;
  #asks: Map<number, PendingAsk> | null = null;
  #nextAsk = 0;
  #prefetched: Prefetched | null;
  #req: RequestView | null = null;
  #res: ResponseWriter | UpstreamResponseView | null = null;

  constructor(id: number, prefetched: Prefetched | null) {
    this.id = id;
    this.#prefetched = prefetched;
  }

  ask(info: "var" | "reqBody" | "respBody", name?: string): Promise<Uint8Array | null> {
    if (this.cancelled) return Promise.reject(new Error("the call was already answered"));
    const key = info === "var" ? `var:${name}` : info;
    if (this.#prefetched?.has(key)) return Promise.resolve(this.#prefetched.get(key)!);
    const askId = this.#nextAsk++;
    const code = info === "var" ? Info.Var : info === "reqBody" ? Info.ReqBody : Info.RespBody;
    out.begin(Kind.Ask).u32(this.id).u32(askId).u8(code).rawUtf8(name ?? "");
    out.end();
    queueFlush();
    return new Promise((resolve, reject) => {
      (this.#asks ??= new Map()).set(askId, { resolve, reject });
    });
  }

  warn(message: string): void {
    // Under the same per-second limit as the plugin's console.
    pluginLog.line(LogLevel.Warn, message);
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
  run(conf: unknown, phase: number, request: Uint8Array, overlay: Patch | null): void {
    const bb = new ByteBuffer(request);
    let result: void | Promise<void>;
    if (phase === Phase.Request) {
      const req = new RequestView(HttpReqCallReq.getRootAsHttpReqCallReq(bb), overlay, this);
      const res = new ResponseWriter(overlay, this);
      this.#req = req;
      this.#res = res;
      result = plugin!.requestFilter?.(conf, req, res);
    } else {
      const res = new UpstreamResponseView(
        HttpRespCallReq.getRootAsHttpRespCallReq(bb),
        overlay,
        this,
      );
      this.#res = res;
      result = plugin!.responseFilter?.(conf, res);
    }
    if (result instanceof Promise) {
      result.then(() => this.#done(), (error) => this.fail(error)).then(queueFlush);
    } else {
      this.#done();
    }
  }

  #done(): void {
    try {
      const patch = new Patch();
      this.#req?.collect(patch);
      this.#res!.collect(patch);
      calls.delete(this.id);
      if (this.cancelled) return;
      out.begin(Kind.Result).u32(this.id);
      patch.encode(out.out);
      out.end();
    } catch (error) {
      // Encoding threw half-way (a list over the limits, a value whose getter throws): drop the
      // half-written message, so that the batch stays well formed and only this call fails.
      out.abort();
      this.fail(error);
    }
  }

  fail(error: unknown): void {
    calls.delete(this.id);
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
    const text = errorText(error).slice(0, 4096);
    out.begin(Kind.Failed).u32(this.id).u8(cause).rawUtf8(text);
    out.end();
  }
}

// Conf parses in progress. A restarted sandbox gets every conf replayed and the calls that
// queued meanwhile in one batch, so a call may arrive before its conf is parsed: it waits.
const parsing = new Map<number, Promise<void>>();

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
    // The batch buffer is this message's own (it was transferred), so a view is safe to keep.
    const value = body.bytesView();
    answers.set(info === Info.Var ? `var:${name}` : INFO_KEYS[info] ?? "", present ? value : null);
  }
  return answers;
}

function startCall(body: ByteReader): void {
  const callId = body.u32();
  const confId = body.u32();
  const phase = body.u8();
  const request = body.raw(body.u32());
  const prefetched = readPrefetched(body);
  const overlayBytes = body.rest();
  const parse = confs.has(confId) ? undefined : parsing.get(confId);
  if (!parse) return runCall(callId, confId, phase, request, prefetched, overlayBytes);
  parse.then(() => {
    runCall(callId, confId, phase, request, prefetched, overlayBytes);
    queueFlush();
  });
}

function runCall(
  callId: number,
  confId: number,
  phase: number,
  request: Uint8Array,
  prefetched: Prefetched | null,
  overlayBytes: Uint8Array,
): void {
  if (!confs.has(confId)) {
    out.begin(Kind.Failed).u32(callId).u8(FailCause.UnknownConf).rawUtf8(`no conf ${confId}`);
    out.end();
    return;
  }
  const call = new WorkerCall(callId, prefetched);
  calls.set(callId, call);
  try {
    const overlay = overlayBytes.length ? Patch.decode(overlayBytes) : null;
    call.run(confs.get(confId), phase, request, overlay);
  } catch (error) {
    call.fail(error);
  }
}

function answer(body: ByteReader): void {
  const call = calls.get(body.u32());
  const askId = body.u32();
  const present = body.u8() === 1;
  // The batch buffer is this message's own (it was transferred), so a view is safe to keep.
  call?.answer(askId, present ? body.rest() : null);
}

function cancel(callId: number): void {
  const call = calls.get(callId);
  if (!call) return;
  calls.delete(callId);
  call.cancel();
}

async function parseConf(confId: number, raw: string): Promise<void> {
  try {
    const conf = plugin!.parseConf ? await plugin!.parseConf(raw) : defaultParseConf(raw);
    const prefetch = checkPrefetch(plugin!.prefetch?.(conf));
    confs.set(confId, conf);
    writePrefetch(out.begin(Kind.ConfOk).u32(confId), prefetch);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    out.begin(Kind.ConfFailed).u32(confId).rawUtf8(reason.slice(0, 2048));
  }
  out.end();
  queueFlush();
}

function onBatch(batch: Uint8Array): void {
  readMessages(batch, (kind, body) => {
    switch (kind) {
      case Kind.Call:
        startCall(body);
        break;
      case Kind.Answer:
        answer(body);
        break;
      case Kind.Cancel:
        cancel(body.u32());
        break;
      case Kind.Conf: {
        const confId = body.u32();
        const parse = parseConf(confId, decodeUtf8(body.rest()));
        parsing.set(confId, parse);
        parse.then(() => {
          if (parsing.get(confId) === parse) parsing.delete(confId);
        });
        break;
      }
      case Kind.DropConf:
        confs.delete(body.u32());
        break;
      default:
        throw new ByteFormatError(`unexpected message kind ${kind}`);
    }
  });
  out.begin(Kind.Ack);
  out.end();
  queueFlush();
}

async function load(init: WorkerInit): Promise<void> {
  pluginLog.setLimit(init.logLinesPerSecond);
  pluginName = init.name;
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
    plugin = candidate;
    const flags = (plugin.requestFilter ? 1 : 0) | (plugin.responseFilter ? 2 : 0);
    out.begin(Kind.Ready).u8(flags).rawUtf8(plugin.name);
  } catch (error) {
    const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    out.begin(Kind.LoadFailed).rawUtf8(text.slice(0, 4096));
  }
  out.end();
  flush();
}

caps.listen("message", (event) => {
  const data = (event as MessageEvent).data;
  if (data instanceof ArrayBuffer) onBatch(new Uint8Array(data));
  else if (plugin === undefined && typeof data === "object" && data !== null) {
    load(data as WorkerInit);
  }
});

// Errors that escape a plugin (a throw in a timer, a rejection nobody awaits) are logged under
// the plugin's name instead of ending the worker.
caps.listen("error", (event) => {
  event.preventDefault();
  const error = (event as ErrorEvent).error;
  console.error("uncaught error:", error);
});
caps.listen("unhandledrejection", (event) => {
  event.preventDefault();
  console.error("unhandled promise rejection:", (event as PromiseRejectionEvent).reason);
});
