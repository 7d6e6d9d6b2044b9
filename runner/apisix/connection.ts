/**
 * Serves one APISIX connection: frames in order, one exchange at a time, until APISIX closes
 * it. Every frame gets exactly one reply (or, for a call, ExtraInfo questions and then one
 * reply); malformed input gets a type-0 error frame; the runner never closes first and never
 * writes outside an exchange.
 *
 * @module
 */
import { Encoding } from "flatbuffers";
import { byteBuffer } from "../../protocol/byte_buffer.ts";
import { decodeUtf8 } from "../../api/bytes.ts";
import { ErrCode, RpcType, writeAll } from "../../protocol/frame.ts";
import { type Frame, FrameReader, TruncatedFrameError } from "../../protocol/frame_reader.ts";
import { ERROR_FRAMES, FrameEncoder, OversizeReplyError } from "../../protocol/encode.ts";
import { ExtraInfoResp } from "../../protocol/gen/extra_info_resp.ts";
import { HttpReqCallReq } from "../../protocol/gen/http_req_call_req.ts";
import { HttpRespCallReq } from "../../protocol/gen/http_resp_call_req.ts";
import { PrepareConfReq } from "../../protocol/gen/prepare_conf_req.ts";
import { TextEntry } from "../../protocol/gen/text_entry.ts";
import {
  EXTRA_INFO_RESP,
  HTTP_REQ_CALL_REQ,
  HTTP_RESP_CALL_REQ,
  MalformedPayloadError,
  PREPARE_CONF_REQ,
  verifyRoot,
} from "../../protocol/verify.ts";
import { Phase } from "../../sandbox/messages.ts";
import { CallState, ConnectionGoneError } from "./call.ts";
import type { ChainLink, ConfCache } from "./conf_cache.ts";
import { log } from "../telemetry/log.ts";
import type { PluginRegistry } from "../sandboxes/plugin_registry.ts";
import {
  requestAction,
  requestActionSteps,
  responseHeaders,
  responseHeadersSteps,
} from "../../api/reply.ts";
import type { Patch } from "../../api/patch.ts";
import { STEP_ENTRIES } from "../../protocol/steps.ts";
import { slicer } from "../sandboxes/slicer.ts";
import { tracing } from "../telemetry/tracing.ts";

/** What a connection needs from the runner. */
export interface ConnectionDeps {
  cache: ConfCache;
  plugins: PluginRegistry;
  /**
   * Benchmark-only (`A6_BENCH_FLOOR=1`): answer every HTTPReqCall with a fixed Stop without
   * running plugins, to measure what the protocol alone costs.
   */
  floor?: boolean;
}

const FLOOR_ACTION = {
  kind: "stop",
  status: 200,
  headers: [[new TextEncoder().encode("x-resp-a6-runner"), new TextEncoder().encode("floor")]],
  body: new TextEncoder().encode("hello"),
} as const;

/** Most plugins one PrepareConf may list. */
export const MAX_CONF_ENTRIES = 1024;

/** Thrown when APISIX breaks the exchange rules; the connection is answered and closed. */
class ExchangeError extends Error {}

/** A fail-closed plugin could not prepare a conf for a reason other than the conf itself. */
class PluginUnavailableError extends Error {}

let connectionCount = 0;

/** One APISIX connection. */
export class Connection {
  readonly id = ++connectionCount;
  #conn: Deno.Conn;
  #reader: FrameReader;
  #encoder = new FrameEncoder();
  #deps: ConnectionDeps;
  #busy = false;
  #closed = false;
  /**
   * Exchanges answered so far: the server's shutdown drain watches it for a connection gone
   * quiet (a counter, not a time, so that an exchange does not read the clock).
   */
  exchanges = 0;

  constructor(conn: Deno.Conn, deps: ConnectionDeps) {
    this.#conn = conn;
    this.#deps = deps;
    this.#reader = new FrameReader(conn);
  }

  /** Whether an exchange is in progress. */
  get busy(): boolean {
    return this.#busy;
  }

  /** Serves frames until APISIX closes the connection (or {@linkcode close} is called). */
  async serve(): Promise<void> {
    try {
      for (;;) {
        const frame = this.#reader.tryNext() ?? await this.#reader.next();
        if (!frame) break;
        this.#busy = true;
        try {
          await this.#handle(frame);
        } finally {
          this.#busy = false;
          this.exchanges++;
        }
      }
    } catch (error) {
      if (!this.#closed) this.#logEnd(error);
    } finally {
      this.close();
    }
  }

  /** Closes the connection (shutdown, or after a broken exchange). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer.
    }
  }

  #logEnd(error: unknown): void {
    if (error instanceof TruncatedFrameError) {
      log.conn.warn("connection {id} closed mid-frame: {reason}", {
        id: this.id,
        reason: error.message,
      });
    } else if (
      error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BrokenPipe ||
      error instanceof Deno.errors.BadResource || error instanceof ConnectionGoneError
    ) {
      log.conn.debug("connection {id} went away: {reason}", {
        id: this.id,
        reason: (error as Error).message,
      });
    } else if (error instanceof ExchangeError) {
      log.conn.warn("connection {id} closed: {reason}", { id: this.id, reason: error.message });
    } else {
      log.conn.error("connection {id} failed: {error}", { id: this.id, error });
    }
  }

  #write(bytes: Uint8Array): Promise<void> {
    return writeAll(this.#conn, bytes);
  }

  #error(code: ErrCode): Promise<void> {
    return this.#write(ERROR_FRAMES[code]);
  }

  async #handle(frame: Frame): Promise<void> {
    switch (frame.type) {
      case RpcType.PrepareConf:
        return await this.#prepareConf(frame.payload);
      case RpcType.HttpReqCall:
        return await this.#call(frame.payload, Phase.Request);
      case RpcType.HttpRespCall:
        return await this.#call(frame.payload, Phase.Response);
      default:
        log.conn.warn("connection {id}: RPC type {type} is not a request; answered BAD_REQUEST", {
          id: this.id,
          type: frame.type,
        });
        return await this.#error(ErrCode.BadRequest);
    }
  }

  #verify(payload: Uint8Array, shape: typeof PREPARE_CONF_REQ, what: string): boolean {
    try {
      verifyRoot(payload, shape);
      return true;
    } catch (error) {
      if (!(error instanceof MalformedPayloadError)) throw error;
      log.conn.warn("connection {id}: malformed {what}: {reason}; answered BAD_REQUEST", {
        id: this.id,
        what,
        reason: error.message,
      });
      return false;
    }
  }

  async #prepareConf(payload: Uint8Array): Promise<void> {
    if (!this.#verify(payload, PREPARE_CONF_REQ, "PrepareConf")) {
      return await this.#error(ErrCode.BadRequest);
    }
    const req = PrepareConfReq.getRootAsPrepareConfReq(byteBuffer(payload));
    const key = req.key() ?? "";
    // A route lists a handful of plugins. A conf vector can name millions in 16 MiB (entries
    // may all point at one table), and each would be prepared and logged one by one.
    if (req.confLength() > MAX_CONF_ENTRIES) {
      log.conn.warn(
        "connection {id}: PrepareConf lists {count} plugins, more than {max}; answered BAD_REQUEST",
        {
          id: this.id,
          count: req.confLength(),
          max: MAX_CONF_ENTRIES,
        },
      );
      return await this.#error(ErrCode.BadRequest);
    }
    const entries: Array<[string, string]> = [];
    const entry = new TextEntry();
    for (let i = 0; i < req.confLength(); i++) {
      req.conf(i, entry);
      entries.push([
        decodeUtf8((entry.name(Encoding.UTF8_BYTES) as Uint8Array | null) ?? new Uint8Array()),
        decodeUtf8((entry.value(Encoding.UTF8_BYTES) as Uint8Array | null) ?? new Uint8Array()),
      ]);
    }
    let cached;
    try {
      cached = await this.#deps.cache.prepare(key, async () => {
        for (;;) {
          const results = await Promise.allSettled(
            entries.map(([name, raw]) => this.#link(key, name, raw)),
          );
          const links = results.flatMap((r) =>
            r.status === "fulfilled" && r.value ? [r.value] : []
          );
          const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
          if (failed) {
            for (const link of links) link.host.release(link.handle);
            throw failed.reason;
          }
          // A reload replaced a plugin while its conf was parsed: parse it on the new version.
          const plugins = this.#deps.plugins;
          if (links.every((l) => plugins.host(l.host.settings.name) === l.host)) return links;
          for (const link of links) link.host.release(link.handle);
        }
      });
    } catch (error) {
      if (!(error instanceof PluginUnavailableError)) throw error;
      return await this.#error(ErrCode.ServiceUnavailable);
    }
    log.conn.debug("connection {id}: route {key} has token {token} ({plugins})", {
      id: this.id,
      key,
      token: cached.token,
      plugins: cached.links.map((link) => link.host.settings.name).join(", ") || "no plugins",
    });
    await this.#write(this.#encoder.prepareConf(cached.token));
  }

  /** Prepares one conf entry; null (logged) when the plugin is unknown or rejects the conf. */
  async #link(key: string, name: string, raw: string): Promise<ChainLink | null> {
    const host = this.#deps.plugins.host(name);
    if (!host) {
      log.runner.warn("route {key}: no plugin named {plugin}; it is skipped", {
        key,
        plugin: name,
      });
      return null;
    }
    const result = await host.prepare(raw);
    if (result.ok) return { host, handle: result.handle };
    if (result.cause !== "bad_conf" && host.settings.failure === "closed") {
      // Not the conf's fault: a token without the plugin would run the route unprotected for
      // as long as APISIX caches it. Fail this PrepareConf; APISIX asks again next request, so
      // the line is rate-limited: a plugin that cannot start would log it once per request.
      if (host.allowCallLine()) {
        host.log.warn(
          "route {key}: conf not prepared ({cause}): {reason}; answered " +
            "SERVICE_UNAVAILABLE (failure policy closed)",
          {
            key,
            cause: result.cause,
            reason: result.message,
          },
        );
      }
      throw new PluginUnavailableError(result.message);
    }
    if (host.allowCallLine()) {
      host.log.warn("route {key}: conf rejected ({cause}): {reason}; the plugin is skipped", {
        key,
        cause: result.cause,
        reason: result.message,
      });
    }
    return null;
  }

  async #call(payload: Uint8Array, phase: number): Promise<void> {
    const shape = phase === Phase.Request ? HTTP_REQ_CALL_REQ : HTTP_RESP_CALL_REQ;
    const what = phase === Phase.Request ? "HTTPReqCall" : "HTTPRespCall";
    if (!this.#verify(payload, shape, what)) return await this.#error(ErrCode.BadRequest);
    const bb = byteBuffer(payload);
    const reqCall = phase === Phase.Request ? HttpReqCallReq.getRootAsHttpReqCallReq(bb) : null;
    const respCall = reqCall ? null : HttpRespCallReq.getRootAsHttpRespCallReq(bb);
    const token = reqCall ? reqCall.confToken() : respCall!.confToken();
    const id = reqCall ? reqCall.id() : respCall!.id();
    const entry = this.#deps.cache.get(token);
    if (!entry) {
      log.conn.debug("connection {id}: unknown conf token {token}", { id: this.id, token });
      return await this.#error(ErrCode.ConfTokenNotFound);
    }
    if (this.#deps.floor && reqCall) {
      return await this.#write(this.#encoder.reqCall(id, FLOOR_ACTION));
    }
    const chain = reqCall ? entry.requestChain : entry.responseChain;
    let patch = null;
    let entries = 0;
    let request = payload;
    if (chain.length) {
      const span = tracing.rpc?.(what, entry.key, token, reqCall) ?? null;
      const state = new CallState(
        phase,
        payload,
        (info, name) => this.#askApisix(info, name),
        span,
      );
      const result = await state.run(chain);
      const questions = state.finish();
      if (questions) await questions;
      request = state.request;
      span?.end(state.gone ? "gone" : result.ok ? "ok" : result.cause);
      if (state.gone) throw new ConnectionGoneError();
      if (!result.ok) {
        log.runner.debug("route {key}: plugin {plugin} failed ({cause}): {reason}", {
          key: entry.key,
          plugin: result.plugin,
          cause: result.cause,
          reason: result.message,
        });
        return await this.#error(ErrCode.ServiceUnavailable);
      }
      patch = result.patch;
      entries = result.entries;
    }
    let reply: Uint8Array | Promise<Uint8Array>;
    try {
      reply = this.#reply(id, reqCall !== null, patch, entries, request);
      if (reply instanceof Promise) reply = await reply;
    } catch (error) {
      if (!(error instanceof OversizeReplyError)) throw error;
      log.runner.warn("route {key}: {reason}; answered SERVICE_UNAVAILABLE", {
        key: entry.key,
        reason: error.message,
      });
      return await this.#error(ErrCode.ServiceUnavailable);
    }
    await this.#write(reply);
  }

  /**
   * The reply to a call. A patch of a few entries (`entries`, counted by the chain's scans) over
   * a response of a few headers makes a small reply, built at once; a large one is built in
   * slices (see slicer.ts), so it does not hold up every other connection.
   */
  #reply(
    id: number,
    request: boolean,
    patch: Patch | null,
    entries: number,
    payload: Uint8Array,
  ): Uint8Array | Promise<Uint8Array> {
    const encoder = this.#encoder;
    const small = entries < STEP_ENTRIES;
    if (request) {
      if (small) return encoder.reqCall(id, requestAction(patch));
      return slicer.run((function* () {
        return yield* encoder.reqCallSteps(id, yield* requestActionSteps(patch));
      })());
    }
    const resp = HttpRespCallReq.getRootAsHttpRespCallReq(byteBuffer(payload));
    const status = patch?.status ?? 0;
    const body = patch?.responseBody ?? null;
    if (small && resp.headersLength() < STEP_ENTRIES) {
      return encoder.respCall(id, status, responseHeaders(patch, resp), body);
    }
    return slicer.run((function* () {
      return yield* encoder.respCallSteps(
        id,
        status,
        yield* responseHeadersSteps(patch, resp),
        body,
      );
    })());
  }

  /** Sends one ExtraInfo question and reads APISIX's answer. */
  async #askApisix(
    info: "var" | "reqBody" | "respBody",
    name: Uint8Array | undefined,
  ): Promise<Uint8Array | null> {
    await this.#write(this.#encoder.extraInfo(info, name));
    const frame = this.#reader.tryNext() ?? await this.#reader.next();
    if (!frame) throw new ConnectionGoneError();
    const broken = frame.type !== RpcType.ExtraInfo
      ? `expected an ExtraInfo answer, got RPC type ${frame.type}`
      : this.#verify(frame.payload, EXTRA_INFO_RESP, "ExtraInfo answer")
      ? null
      : "malformed ExtraInfo answer";
    if (broken) {
      log.conn.warn("connection {id}: {reason}; answered BAD_REQUEST and closed it", {
        id: this.id,
        reason: broken,
      });
      await this.#error(ErrCode.BadRequest).catch(() => {});
      this.close();
      throw new ExchangeError(broken);
    }
    const resp = ExtraInfoResp.getRootAsExtraInfoResp(byteBuffer(frame.payload));
    const result = resp.resultArray();
    return result ? result.slice() : null;
  }
}
