/**
 * One HTTPReqCall or HTTPRespCall: runs the route's chain in conf order, each plugin seeing the
 * changes of the ones before it, and answers ExtraInfo questions on the call's connection,
 * strictly one at a time and each at most once.
 *
 * @module
 */
import { ByteWriter, encodeUtf8 } from "../api/bytes.ts";
import type { Patch } from "../api/patch.ts";
import { Phase } from "../sandbox/messages.ts";
import type { ChainLink } from "./conf_cache.ts";
import type { CallContext, FailureCause } from "./plugin_host.ts";

/** Asks APISIX one ExtraInfo question on the call's connection. */
export type AskApisix = (
  info: "var" | "reqBody" | "respBody",
  name: Uint8Array | undefined,
) => Promise<Uint8Array | null>;

/** How a chain ended. */
export type ChainResult =
  | { ok: true; patch: Patch | null }
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
  #answers = new Map<string, Promise<Uint8Array | null>>();
  #queue: Promise<unknown> = Promise.resolve();
  #current: ChainLink | null = null;
  #gone = false;

  constructor(phase: number, apisix: AskApisix) {
    this.#phase = phase;
    this.#apisix = apisix;
  }

  /** CallContext: an ExtraInfo question from the running plugin. */
  ask(info: "var" | "reqBody" | "respBody", name: string): Promise<Uint8Array | null> {
    // APISIX has no response body during a request: refuse locally (PROTOCOL.md §8 case 50).
    if (info === "respBody" && this.#phase !== Phase.Response) return Promise.resolve(null);
    const key = info === "var" ? `var:${name}` : info;
    let answer = this.#answers.get(key);
    if (!answer) {
      if (this.#gone) return Promise.reject(new ConnectionGoneError());
      // One question at a time on the wire, in the order they were asked.
      answer = this.#queue.then(() =>
        this.#apisix(info, info === "var" ? encodeUtf8(name) : undefined)
      );
      this.#queue = answer.catch(() => {});
      this.#answers.set(key, answer);
      answer.catch(() => this.abandon());
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
   * Resolves once no ExtraInfo question is waiting for its answer. A call can end (its sandbox
   * died, its deadline passed) while APISIX is still answering: the reply must wait for that
   * answer, or the answer would be read as the next request.
   */
  idle(): Promise<unknown> {
    return this.#queue;
  }

  /** Whether the connection went away during the call. */
  get gone(): boolean {
    return this.#gone;
  }

  /** Runs `chain` over `request` (the verified payload, in a buffer of its own). */
  async run(chain: readonly ChainLink[], request: Uint8Array): Promise<ChainResult> {
    let merged: Patch | null = null;
    let overlay: Uint8Array | null = null;
    for (let i = 0; i < chain.length; i++) {
      const link = chain[i]!;
      this.#current = link;
      const outcome = await link.host.call(link.handle, this.#phase, request, overlay, this);
      this.#current = null;
      if (this.#gone) return { ok: true, patch: null };
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
      if (merged) merged.merge(outcome.patch);
      else merged = outcome.patch;
      if (merged.stop) break;
      if (i + 1 < chain.length) {
        const out = new ByteWriter(256);
        merged.encode(out);
        overlay = out.take();
      }
    }
    return { ok: true, patch: merged };
  }
}
