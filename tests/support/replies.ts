/**
 * Narrowing assertions for decoded replies: each returns the reply as the expected kind, or
 * throws with the reply shown in full.
 *
 * @module
 */
import { latin1, type Reply } from "./apisix.ts";

type Stop = Extract<Reply, { rpc: 2; action: "stop" }>;
type Rewrite = Extract<Reply, { rpc: 2; action: "rewrite" }>;
type None = Extract<Reply, { rpc: 2; action: "none" }>;
type RespCallReply = Extract<Reply, { rpc: 4 }>;

/** A reply in readable form (bodies as Latin-1 text). */
export function show(reply: Reply): string {
  return JSON.stringify(
    reply,
    (_key, value) =>
      value instanceof Uint8Array
        ? `<${value.length} bytes: ${latin1(value.subarray(0, 200))}>`
        : value,
  );
}

function fail(expected: string, reply: Reply): never {
  throw new Error(`expected ${expected}, got ${show(reply)}`);
}

/** The reply as an HTTPReqCall Stop. */
export function asStop(reply: Reply): Stop {
  if (reply.rpc !== 2 || reply.action !== "stop") fail("a Stop", reply);
  return reply;
}

/** The reply as an HTTPReqCall Rewrite. */
export function asRewrite(reply: Reply): Rewrite {
  if (reply.rpc !== 2 || reply.action !== "rewrite") fail("a Rewrite", reply);
  return reply;
}

/** The reply as an HTTPReqCall with no action. */
export function asNone(reply: Reply): None {
  if (reply.rpc !== 2 || reply.action !== "none") fail("a NONE reply", reply);
  return reply;
}

/** The reply as an HTTPRespCall reply. */
export function asRespCall(reply: Reply): RespCallReply {
  if (reply.rpc !== 4) fail("an HTTPRespCall reply", reply);
  return reply;
}

/** The error code of an error frame. */
export function errorCode(reply: Reply): number {
  if (reply.rpc !== 0) fail("an error frame", reply);
  return reply.code;
}

/** The value of the first entry named `name` (case-insensitive), or undefined. */
export function entry(
  entries: ReadonlyArray<readonly [string, string | null]>,
  name: string,
): string | null | undefined {
  const found = entries.find(([n]) => n.toLowerCase() === name.toLowerCase());
  return found ? found[1] : undefined;
}
