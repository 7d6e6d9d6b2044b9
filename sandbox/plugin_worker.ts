/**
 * The entry module of a plugin's Web Worker. It hardens the worker scope, captures console
 * output, loads the plugin module named by the first message, then serves batches of messages
 * (see `messages.ts`): parsing confs and running filters over lazily decoded request views.
 *
 * @module
 */
import { harden } from "./harden.ts";
// Loaded here so that plugins importing the API find it already loaded: a plugin's worker may
// read only the plugin's own directory.
import "../mod.ts";
import { ByteFormatError, type ByteReader, decodeUtf8 } from "../api/bytes.ts";
import { assertPlugin, defaultParseConf } from "../api/define.ts";
import { Patch } from "../api/patch.ts";
import type { Plugin } from "../api/types.ts";
import { type CallHost, RequestView, ResponseWriter, UpstreamResponseView } from "../api/views.ts";
import { HttpReqCallReq } from "../protocol/gen/http_req_call_req.ts";
import { HttpRespCallReq } from "../protocol/gen/http_resp_call_req.ts";
import { ByteBuffer } from "flatbuffers";
import { BatchWriter, FailCause, Info, Kind, LogLevel, Phase, readMessages } from "./messages.ts";
import { captureConsole, consoleLimits } from "./console_capture.ts";

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

captureConsole(caps.inspect, (level, line) => {
  out.begin(Kind.Log).u8(level).rawUtf8(line);
  out.end();
  queueFlush();
});

let plugin: Plugin<unknown> | undefined;
const confs = new Map<number, unknown>();
// Confs whose parseConf has not finished. A restarted sandbox gets its confs and the calls that
// were waiting in one batch: those calls wait for their conf instead of failing.
const parsing = new Map<number, Promise<void>>();

interface PendingAsk {
  resolve(value: Uint8Array | null): void;
  reject(error: Error): void;
}

interface Call {
  asks: Map<number, PendingAsk>;
  nextAsk: number;
  cancelled: boolean;
}

const calls = new Map<number, Call>();

function sendFailure(callId: number, error: unknown): void {
  const cause =
    error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
      ? FailCause.Denied
      : FailCause.Error;
  let text: string;
  try {
    text = error instanceof Error
      ? (error.stack ?? `${error.name}: ${error.message}`)
      : String(error);
  } catch {
    text = "an error that could not be printed";
  }
  out.begin(Kind.Failed).u32(callId).u8(cause).rawUtf8(text.slice(0, 4096));
  out.end();
}

function hostFor(callId: number, call: Call): CallHost {
  return {
    ask(info, name) {
      if (call.cancelled) return Promise.reject(new Error("the call was already answered"));
      const askId = call.nextAsk++;
      const code = info === "var" ? Info.Var : info === "reqBody" ? Info.ReqBody : Info.RespBody;
      out.begin(Kind.Ask).u32(callId).u32(askId).u8(code).rawUtf8(name ?? "");
      out.end();
      queueFlush();
      return new Promise((resolve, reject) => call.asks.set(askId, { resolve, reject }));
    },
    warn(message) {
      out.begin(Kind.Log).u8(LogLevel.Warn).rawUtf8(message);
      out.end();
      queueFlush();
    },
  };
}

function finish(callId: number, call: Call, patch: Patch): void {
  calls.delete(callId);
  if (call.cancelled) return;
  out.begin(Kind.Result).u32(callId);
  patch.encode(out.out);
  out.end();
}

function fail(callId: number, call: Call, error: unknown): void {
  calls.delete(callId);
  if (!call.cancelled) sendFailure(callId, error);
}

function startCall(body: ByteReader): void {
  const callId = body.u32();
  const confId = body.u32();
  const phase = body.u8();
  const request = body.raw(body.u32());
  const overlayBytes = body.rest();
  const pending = parsing.get(confId);
  if (pending) {
    pending.then(() => runCall(callId, confId, phase, request, overlayBytes)).then(queueFlush);
    return;
  }
  runCall(callId, confId, phase, request, overlayBytes);
}

function runCall(
  callId: number,
  confId: number,
  phase: number,
  request: Uint8Array,
  overlayBytes: Uint8Array,
): void {
  if (!confs.has(confId)) {
    out.begin(Kind.Failed).u32(callId).u8(FailCause.UnknownConf).rawUtf8(`no conf ${confId}`);
    out.end();
    return;
  }
  const conf = confs.get(confId);
  const call: Call = { asks: new Map(), nextAsk: 0, cancelled: false };
  calls.set(callId, call);
  const host = hostFor(callId, call);
  try {
    const overlay = overlayBytes.length ? Patch.decode(overlayBytes) : null;
    const bb = new ByteBuffer(request);
    let collect: (patch: Patch) => void;
    let result: void | Promise<void>;
    if (phase === Phase.Request) {
      const req = new RequestView(HttpReqCallReq.getRootAsHttpReqCallReq(bb), overlay, host);
      const res = new ResponseWriter(overlay, host);
      collect = (patch) => {
        req.collect(patch);
        res.collect(patch);
      };
      result = plugin!.requestFilter?.(conf, req, res);
    } else {
      const res = new UpstreamResponseView(
        HttpRespCallReq.getRootAsHttpRespCallReq(bb),
        overlay,
        host,
      );
      collect = (patch) => res.collect(patch);
      result = plugin!.responseFilter?.(conf, res);
    }
    const done = () => {
      const patch = new Patch();
      collect(patch);
      finish(callId, call, patch);
    };
    if (result instanceof Promise) {
      result.then(() => {
        try {
          done();
        } catch (error) {
          fail(callId, call, error);
        }
        queueFlush();
      }, (error) => {
        fail(callId, call, error);
        queueFlush();
      });
    } else {
      done();
    }
  } catch (error) {
    fail(callId, call, error);
  }
}

function answer(body: ByteReader): void {
  const call = calls.get(body.u32());
  const askId = body.u32();
  const present = body.u8() === 1;
  const bytes = body.rest();
  const pending = call?.asks.get(askId);
  if (!pending) return;
  call!.asks.delete(askId);
  // A copy, so the plugin may keep it after the batch buffer is reused.
  pending.resolve(present ? bytes.slice() : null);
}

function cancel(callId: number): void {
  const call = calls.get(callId);
  if (!call) return;
  calls.delete(callId);
  call.cancelled = true;
  for (const ask of call.asks.values()) ask.reject(new Error("the call was already answered"));
}

function parseConf(confId: number, raw: string): void {
  const done = (async () => {
    try {
      const conf = plugin!.parseConf ? await plugin!.parseConf(raw) : defaultParseConf(raw);
      confs.set(confId, conf);
      out.begin(Kind.ConfOk).u32(confId);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      out.begin(Kind.ConfFailed).u32(confId).rawUtf8(reason.slice(0, 2048));
    }
    out.end();
    queueFlush();
  })();
  parsing.set(confId, done);
  done.finally(() => {
    if (parsing.get(confId) === done) parsing.delete(confId);
  });
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
      case Kind.Conf:
        parseConf(body.u32(), decodeUtf8(body.rest()));
        break;
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
  consoleLimits.linesPerSecond = init.logLinesPerSecond;
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
