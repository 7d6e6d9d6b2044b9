/**
 * One HTTPReqCall or HTTPRespCall: runs the route's chain in conf order, each plugin seeing the
 * changes of the ones before it, and answers ExtraInfo questions on the call's connection,
 * strictly one at a time and each at most once.
 *
 * @module
 */
import { ByteWriter, encodeUtf8 } from "../../api/bytes.ts";
import { addScans, type Patch, type PatchScan } from "../../api/patch.ts";
import { Phase } from "../../sandbox/messages.ts";
import type { ChainLink } from "./conf_cache.ts";
import type { CallContext, FailureCause } from "../sandboxes/plugin_host.ts";
import { slicer } from "../sandboxes/slicer.ts";
import type { RpcSpan } from "../telemetry/tracing.ts";

/** Asks APISIX one ExtraInfo question on the call's connection. */
export type AskApisix = (
  info: "var" | "reqBody" | "respBody",
  name: Uint8Array | undefined,
) => Promise<Uint8Array | null>;

/** How a chain ended. */
export type ChainResult =
  /** `entries`: the entries of the patches' lists together, at most (see `addScans`). */
  | { ok: true; patch: Patch | null; entries: number }
  | { ok: false; plugin: string; cause: FailureCause; message: string };

/** Thrown into a call whose connection closed while it waited for APISIX. */
export class ConnectionGoneError extends Error {
  constructor() {
    super("the connection closed during the call");
    this.name = "ConnectionGoneError";
  }
}

/** The state of one call: its ExtraInfo cache and the plugin currently running. */
export class CallState implements CallContext {
  #apisix: AskApisix;
  #phase: number;
  // Made at the first question: most calls ask none.
  #answers: Map<string, Promise<Uint8Array | null>> | null = null;
  #queue: Promise<unknown> | null = null;
  #current: ChainLink | null = null;
  #gone = false;
  #over = false;
  #span: RpcSpan | null;
  #request: Uint8Array;
  #owned = false;

  /** `span` traces the call when tracing is on (see `tracing.ts`). */
  /**
   * `request` is the call's verified payload, a view of the connection's read buffer: it is
   * copied before the first ExtraInfo answer is read into that buffer.
   */
  constructor(
    phase: number,
    request: Uint8Array,
    apisix: AskApisix,
    span: RpcSpan | null = null,
  ) {
    this.#phase = phase;
    this.#request = request;
    this.#apisix = apisix;
    this.#span = span;
  }

  /** The request payload (a copy once the connection has been read during the call). */
  get request(): Uint8Array {
    return this.#request;
  }

  /** CallContext: an ExtraInfo question from the running plugin. */
  ask(info: "var" | "reqBody" | "respBody", name: string): Promise<Uint8Array | null> {
    // APISIX has no response body during a request: refuse locally (PROTOCOL.md §8 case 50).
    if (info === "respBody" && this.#phase !== Phase.Response) return Promise.resolve(null);
    const key = info === "var" ? `var:${name}` : info;
    let answer = this.#answers?.get(key);
    if (!answer) {
      if (this.#gone) return Promise.reject(new ConnectionGoneError());
      this.#span?.ask(info, name);
      // One question at a time on the wire, in the order they were asked.
      answer = (this.#queue ?? Promise.resolve()).then(() => {
        // Queued behind a question that outlived the call: APISIX is owed nothing more.
        if (this.#over) throw new Error("the call was already answered");
        if (!this.#owned) {
          this.#request = this.#request.slice();
          this.#owned = true;
        }
        return this.#apisix(info, info === "var" ? encodeUtf8(name) : undefined);
      });
      this.#queue = answer.catch(() => {});
      (this.#answers ??= new Map()).set(key, answer);
      answer.catch(() => {
        if (!this.#over) this.abandon();
      });
    }
    return answer;
  }

  /** The connection is gone: cancel the running plugin's call. */
  abandon(): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#current?.host.cancel(this);
  }

  /**
   * Ends the call and resolves once no question is on the wire any more. A chain can end (on a
   * deadline) while APISIX is still answering a question; its answer must be read before the
   * connection moves on, or it would be taken for the next request. Undefined when nothing was
   * asked (no promise to wait for).
   */
  finish(): Promise<void> | undefined {
    this.#over = true;
    return this.#queue?.then(() => {});
  }

  /** Whether the connection went away during the call. */
  get gone(): boolean {
    return this.#gone;
  }

  /** Runs `chain` over the request. */
  async run(chain: readonly ChainLink[]): Promise<ChainResult> {
    let merged: Patch | null = null;
    let overlay: Uint8Array | null = null;
    // The limits hold for the chain's patches together.
    let size: PatchScan = { over: null, headers: 0, args: 0, responseHeaders: 0, replyBytes: 0 };
    for (let i = 0; i < chain.length; i++) {
      const link = chain[i]!;
      this.#current = link;
      const span = this.#span?.plugin(link.host.settings.name);
      const outcome = await link.host.call(
        link.handle,
        this.#phase,
        this.#request,
        overlay,
        this,
        merged,
      );
      span?.end(outcome.ok ? "ok" : outcome.cause);
      this.#current = null;
      if (this.#gone) return { ok: true, patch: null, entries: 0 };
      if (!outcome.ok) {
        // A conf that no longer parses after a sandbox restart leaves the plugin out, as at
        // PrepareConf time.
        if (outcome.cause === "bad_conf") continue;
        if (link.host.settings.failure === "open") continue;
        return {
          ok: false,
          plugin: link.host.settings.name,
          cause: outcome.cause,
          message: outcome.message,
        };
      }
      if (outcome.patch.empty) continue;
      const sum = addScans(size, outcome.size);
      if (sum.over) {
        const message = `the call was refused: the route's patches together ${sum.over}`;
        link.host.refused(message);
        if (link.host.settings.failure === "open") continue;
        return { ok: false, plugin: link.host.settings.name, cause: "error", message };
      }
      size = sum;
      if (merged) await slicer.run(merged.mergeSteps(outcome.patch));
      else merged = outcome.patch;
      if (merged.stop) break;
      if (i + 1 < chain.length) {
        const out = new ByteWriter(256);
        await slicer.run(merged.encodeSteps(out));
        overlay = out.take();
      }
    }
    return { ok: true, patch: merged, entries: size.headers + size.args + size.responseHeaders };
  }
}
