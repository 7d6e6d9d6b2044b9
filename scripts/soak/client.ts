/**
 * One soak client: a connection that prepares the routes and sends the weighted mix, checks every reply and counts every error by cause.
 *
 * @module
 */
import {
  decodeAsk,
  decodeReply,
  encodeExtraInfoResp,
  encodeReqCall,
  encodeRespCall,
  type Entry,
  latin1,
  type Reply,
} from "../../tests/support/apisix.ts";
import { pause, RawConn, rawFrame } from "../../tests/support/raw_conn.ts";
import {
  ABANDON_SHARE,
  CALL_TIMEOUT_MS,
  FAIL_SHARE,
  REQUESTS_PER_CONNECTION,
  type Route,
  SLEEPY_TIMEOUT_MS,
} from "./mix.ts";
import { bump, type Minute } from "./stats.ts";

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>),
  );
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---- the client ---------------------------------------------------------------------------

/** When the sleepy plugin last overran its deadline (start of the slow call). */
export const slowCalls: number[] = [];

/**
 * One connection's worth of the mix: prepares the routes, sends weighted calls at its share of
 * the rate, checks each reply and files every error under its cause in the current minute.
 */
export class Client {
  #socket: string;
  #routes: Route[];
  #total: number;
  #conn: RawConn | null = null;
  #used = 0;
  #id: number;
  #stats: () => Minute;

  constructor(socket: string, routes: Route[], id: number, stats: () => Minute) {
    this.#socket = socket;
    this.#routes = routes;
    this.#total = routes.reduce((n, r) => n + r.weight, 0);
    this.#id = id;
    this.#stats = stats;
  }

  #pick(): Route {
    let at = Math.random() * this.#total;
    for (const route of this.#routes) {
      at -= route.weight;
      if (at < 0) return route;
    }
    return this.#routes[0]!;
  }

  async #connection(): Promise<RawConn> {
    if (this.#conn && this.#used < REQUESTS_PER_CONNECTION) return this.#conn;
    if (this.#conn) {
      this.#conn.close();
      this.#stats().reconnects++;
    }
    this.#conn = await RawConn.connect(this.#socket);
    this.#used = 0;
    return this.#conn;
  }

  #drop(): void {
    this.#conn?.close();
    this.#conn = null;
  }

  /** Runs paced calls until `until`; `interval` ms between call starts. */
  async run(until: () => number, interval: number, nextSlowCall: () => boolean): Promise<void> {
    let next = performance.now() + Math.random() * interval;
    while (performance.now() < until()) {
      const wait = next - performance.now();
      if (wait > 0) await pause(wait);
      next += interval;
      if (next < performance.now() - 1000) next = performance.now();
      const route = this.#pick();
      const slow = route.name === "sleepy" && nextSlowCall();
      await this.#call(route, slow);
    }
    this.#drop();
  }

  async #call(route: Route, slow: boolean): Promise<void> {
    // Counted in the minute the call ends in.
    const stats = () => this.#stats();
    const started = performance.now();
    const fail = route.name === "flaky" && Math.random() < FAIL_SHARE;
    const abandon = (route.name === "vars" || route.name === "body") &&
      Math.random() < ABANDON_SHARE;
    const id = (this.#id << 20) + (this.#used & 0xfffff);
    const body = route.name === "body" || route.name === "response"
      ? crypto.getRandomValues(new Uint8Array(1024 + Math.floor(Math.random() * 7168)))
      : null;
    const headers: Entry[] = [
      ["host", "soak.test"],
      ["user-agent", "soak"],
      ["x-request-id", String(id)],
      ["x-multi", "1"],
      ["x-multi", "2"],
    ];
    if (fail) headers.push(["x-fail", "1"]);
    if (slow) headers.push(["x-sleep-ms", String(SLEEPY_TIMEOUT_MS * 2)]);
    const payload = route.name === "response"
      ? encodeRespCall({ id, status: 200, headers, token: route.token })
      : encodeReqCall({
        id,
        method: body ? 2 : 0,
        path: `/soak/${route.name}`,
        args: [["n", String(this.#used)]],
        headers,
        token: route.token,
      });
    let reply: Reply;
    try {
      const conn = await this.#connection();
      this.#used++;
      if (slow) slowCalls.push(Date.now());
      await conn.write(rawFrame(route.name === "response" ? 4 : 2, payload));
      for (;;) {
        const frame = await conn.frame(CALL_TIMEOUT_MS);
        if (frame.type !== 3) {
          reply = decodeReply(frame);
          break;
        }
        if (abandon) {
          // The client goes away instead of answering.
          this.#drop();
          stats().abandoned++;
          return;
        }
        const ask = decodeAsk(frame.payload);
        const answer = ask.kind === "var" ? `v-${ask.name}` : body;
        await conn.write(rawFrame(3, encodeExtraInfoResp(answer)));
      }
    } catch (error) {
      this.#drop();
      stats().requests++;
      bump(stats().unexplained, `client:${(error as Error).message.slice(0, 60)}`);
      return;
    }
    stats().requests++;
    stats().latencies.push(performance.now() - started);
    const problem = await this.#check(route, reply, { fail, slow, body, id });
    if (problem === null) stats().ok++;
    else if (problem.explained) bump(stats().explained, problem.kind);
    else bump(stats().unexplained, problem.kind);
  }

  async #check(
    route: Route,
    reply: Reply,
    call: { fail: boolean; slow: boolean; body: Uint8Array | null; id: number },
  ): Promise<{ kind: string; explained: boolean } | null> {
    if (reply.rpc === 0) {
      const kind = `${route.name}:error_code_${reply.code}`;
      if (reply.code !== 1) return { kind, explained: false };
      if (route.name === "flaky" && call.fail) return { kind: "flaky:threw", explained: true };
      if (route.name === "sleepy" && call.slow) return { kind: "sleepy:timeout", explained: true };
      if (route.name === "sleepy") {
        // Calls in the sandbox when a slow call overran the deadline are killed with it.
        const now = Date.now();
        const near = slowCalls.some((at) => now - at < SLEEPY_TIMEOUT_MS + 2000);
        if (near) return { kind: "sleepy:killed_with_timeout", explained: true };
      }
      return { kind, explained: false };
    }
    const headers = (list: Entry[]) => Object.fromEntries(list);
    const wrong = (what: string) => ({ kind: `${route.name}:${what}`, explained: false });
    switch (route.name) {
      case "say":
        if (reply.rpc !== 2 || reply.action !== "stop" || latin1(reply.body!) !== "hello") {
          return wrong("reply");
        }
        break;
      case "headers": {
        if (reply.rpc !== 2 || reply.action !== "stop") return wrong("reply");
        const multi = reply.headers.filter(([name]) => name === "x-multi").map(([, v]) => v);
        if (reply.headers.length !== 5 || multi.join() !== "1,2") return wrong("headers");
        break;
      }
      case "body":
        if (reply.rpc !== 2 || reply.action !== "stop") return wrong("reply");
        if (headers(reply.headers)["x-digest"] !== await sha256Hex(call.body!)) {
          return wrong("digest");
        }
        break;
      case "response":
        if (reply.rpc !== 4 || reply.id !== call.id) return wrong("reply");
        if (headers(reply.headers)["x-digest"] !== await sha256Hex(call.body!)) {
          return wrong("digest");
        }
        break;
      case "vars":
        if (reply.rpc !== 2 || reply.action !== "rewrite") return wrong("reply");
        if (
          headers(reply.headers)["x-vars"] !== "remote_addr=v-remote_addr;server_port=v-server_port"
        ) return wrong("vars");
        break;
      case "chain": {
        if (reply.rpc !== 2 || reply.action !== "rewrite") return wrong("reply");
        const h = headers(reply.headers);
        if (h["x-vars"] !== "uri=v-uri" || h["x-echo"] !== "touched") return wrong("chain");
        break;
      }
      case "flaky":
        if (call.fail) return wrong("did_not_throw");
        if (reply.rpc !== 2 || reply.action !== "rewrite") return wrong("reply");
        break;
      case "sleepy":
        if (reply.rpc !== 2 || reply.action !== "stop" || latin1(reply.body!) !== "slept 0") {
          return wrong(call.slow ? "slow_call_answered" : "reply");
        }
        break;
    }
    return null;
  }
}
