/**
 * The local gateway's connections to the runner, used the way APISIX uses them (PROTOCOL.md
 * §4.1, §6): a pool of keep-alive connections, one exchange at a time on each, ExtraInfo
 * questions answered in between, a connection closed after any failure, and PrepareConf
 * tokens cached per key and refreshed when the runner answers CONF_TOKEN_NOT_FOUND (three
 * attempts in all).
 *
 * @module
 */
import { ErrCode, RpcType, writeAll } from "../protocol/frame.ts";
import { encodeFrame } from "../protocol/frame.ts";
import { FrameReader } from "../protocol/frame_reader.ts";
import {
  decodeErrorCode,
  decodeQuestion,
  decodeToken,
  encodePrepareConf,
  type Question,
} from "./wire.ts";
import { encodeExtraInfoAnswer } from "./wire.ts";

/** The runner answered with an error frame, or the exchange failed. */
export class RunnerError extends Error {
  /** The error frame's code, or null when the exchange itself failed. */
  readonly code: number | null;
  constructor(message: string, code: number | null = null) {
    super(message);
    this.name = "RunnerError";
    this.code = code;
  }
}

/** Answers one ExtraInfo question; null is APISIX's nil (absent). */
export type Answerer = (question: Question) => Promise<Uint8Array | null> | Uint8Array | null;

const ERROR_NAMES = ["bad request", "service unavailable", "conf token not found"];
const CONNECT_TIMEOUT_MS = 1000;
const READ_TIMEOUT_MS = 60_000;
const MAX_IDLE = 32;

interface PooledConn {
  conn: Deno.Conn;
  reader: FrameReader;
}

/** A pool of connections to one runner socket. */
export class RunnerClient {
  readonly path: string;
  #idle: PooledConn[] = [];

  constructor(path: string) {
    this.path = path;
  }

  async #take(): Promise<PooledConn> {
    const idle = this.#idle.pop();
    if (idle) return idle;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const conn = await Promise.race([
        Deno.connect({ transport: "unix", path: this.path }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("timeout")), CONNECT_TIMEOUT_MS);
        }),
      ]);
      return { conn, reader: new FrameReader(conn) };
    } catch (error) {
      throw new RunnerError(
        `failed to connect to the unix socket unix:${this.path}: ${(error as Error).message}` +
          " (is the runner running? start it with `deno task dev`)",
      );
    } finally {
      clearTimeout(timer);
    }
  }

  #release(pooled: PooledConn): void {
    if (this.#idle.length < MAX_IDLE) this.#idle.push(pooled);
    else pooled.conn.close();
  }

  /**
   * One exchange: sends a request of `type`, answers ExtraInfo questions, and resolves to the
   * reply's payload (a copy). Error frames and broken exchanges reject with a
   * {@linkcode RunnerError}; the connection is then closed, as APISIX does.
   */
  async exchange(type: number, payload: Uint8Array, answer: Answerer): Promise<Uint8Array> {
    const pooled = await this.#take();
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await writeAll(pooled.conn, encodeFrame(type, payload));
      for (;;) {
        const frame = await Promise.race([
          pooled.reader.next(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error("timeout")), READ_TIMEOUT_MS);
          }),
        ]);
        clearTimeout(timer);
        if (!frame) throw new RunnerError("the runner closed the connection");
        if (frame.type === RpcType.ExtraInfo && type !== RpcType.PrepareConf) {
          const question = decodeQuestion(frame.payload);
          if (question.info === "unknown") {
            throw new RunnerError(`unsupported info type: ${question.type}`);
          }
          const result = await answer(question);
          await writeAll(
            pooled.conn,
            encodeFrame(RpcType.ExtraInfo, encodeExtraInfoAnswer(result)),
          );
          continue;
        }
        if (frame.type === RpcType.Error) {
          const code = decodeErrorCode(frame.payload);
          throw new RunnerError(ERROR_NAMES[code] ?? `unknown err ${code}`, code);
        }
        if (frame.type !== type) throw new RunnerError(`unexpected type ${frame.type}`);
        const reply = frame.payload.slice();
        this.#release(pooled);
        return reply;
      }
    } catch (error) {
      clearTimeout(timer);
      pooled.conn.close();
      if (error instanceof RunnerError) throw error;
      throw new RunnerError(`the exchange with the runner failed: ${(error as Error).message}`);
    }
  }

  /** Closes the idle connections. */
  close(): void {
    for (const pooled of this.#idle.splice(0)) pooled.conn.close();
  }
}

/** Conf tokens by PrepareConf key, as APISIX keeps them (§6.3), with concurrent asks merged. */
export class TokenCache {
  #client: RunnerClient;
  #tokens = new Map<string, number>();
  #pending = new Map<string, Promise<number>>();

  constructor(client: RunnerClient) {
    this.#client = client;
  }

  /** The token for `key`, preparing the conf list when there is none yet. */
  get(key: string, conf: ReadonlyArray<[string, string]>): Promise<number> {
    const known = this.#tokens.get(key);
    if (known !== undefined) return Promise.resolve(known);
    let pending = this.#pending.get(key);
    if (!pending) {
      pending = this.#client.exchange(RpcType.PrepareConf, encodePrepareConf(conf, key), () => null)
        .then((payload) => {
          const token = decodeToken(payload);
          this.#tokens.set(key, token);
          return token;
        })
        .finally(() => this.#pending.delete(key));
      this.#pending.set(key, pending);
    }
    return pending;
  }

  /** Forgets `key` (the runner no longer knows its token). */
  forget(key: string): void {
    this.#tokens.delete(key);
  }

  /** Forgets every token (the routes changed). */
  clear(): void {
    this.#tokens.clear();
  }
}

/**
 * Runs `call` with the token of `key`, as APISIX's `communicate` does: on
 * CONF_TOKEN_NOT_FOUND the token is refreshed and the call retried, three attempts in all.
 */
export async function withToken<T>(
  tokens: TokenCache,
  key: string,
  conf: ReadonlyArray<[string, string]>,
  call: (token: number) => Promise<T>,
  onRetry: (attempt: number) => void = () => {},
): Promise<T> {
  for (let attempt = 1;; attempt++) {
    const token = await tokens.get(key, conf);
    try {
      return await call(token);
    } catch (error) {
      if (
        !(error instanceof RunnerError) || error.code !== ErrCode.ConfTokenNotFound || attempt >= 3
      ) {
        throw error;
      }
      tokens.forget(key);
      onRetry(attempt);
    }
  }
}
