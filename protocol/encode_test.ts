import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { decodeAsk, decodeReply, type Frame } from "../tests/support/apisix.ts";
import { ERROR_FRAMES, FrameEncoder, OversizeReplyError, type WireEntry } from "./encode.ts";
import { encodeFrame, ErrCode, HEADER_SIZE, MAX_PAYLOAD, RpcType, writeHeader } from "./frame.ts";

const enc = new TextEncoder();
const b = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));
const entries = (...pairs: Array<[string, string | null]>): WireEntry[] =>
  pairs.map(([name, value]) => [b(name), value === null ? null : b(value)]);

/** Splits a frame into its type, its 24-bit length field and its payload, checking both agree. */
function parse(frame: Uint8Array): Frame & { length: number } {
  const length = (frame[1]! << 16) | (frame[2]! << 8) | frame[3]!;
  equal(frame.length, HEADER_SIZE + length, "the length field matches the payload");
  ok(length >= 12, `payload of ${length} bytes`);
  return { type: frame[0]!, length, payload: frame.slice(HEADER_SIZE) };
}

Deno.test("writeHeader: 24-bit big-endian length; zero and oversize lengths are refused", () => {
  const header = new Uint8Array(4);
  writeHeader(header, 0, 2, 0x01_02_03);
  deepEqual([...header], [2, 1, 2, 3]);
  writeHeader(header, 0, 0, MAX_PAYLOAD);
  deepEqual([...header], [0, 0xff, 0xff, 0xff]);
  throws(() => writeHeader(header, 0, 1, 0), RangeError);
  throws(() => writeHeader(header, 0, 1, MAX_PAYLOAD + 1), RangeError);
  throws(() => encodeFrame(1, new Uint8Array(0)), RangeError);
  deepEqual([...encodeFrame(4, new Uint8Array([9, 8]))], [4, 0, 0, 2, 9, 8]);
});

Deno.test("ERROR_FRAMES: always RPC type 0, each with its code", () => {
  for (const code of [ErrCode.BadRequest, ErrCode.ServiceUnavailable, ErrCode.ConfTokenNotFound]) {
    const frame = parse(ERROR_FRAMES[code]);
    equal(frame.type, RpcType.Error);
    deepEqual(decodeReply(frame), { rpc: 0, code });
  }
});

Deno.test("FrameEncoder.prepareConf: the token, including the largest", () => {
  const encoder = new FrameEncoder();
  for (const token of [1, 0x7fff_ffff, 0xffff_ffff]) {
    const frame = parse(encoder.prepareConf(token));
    equal(frame.type, RpcType.PrepareConf);
    deepEqual(decodeReply(frame), { rpc: 1, token });
  }
});

Deno.test("FrameEncoder.reqCall: NONE, Stop and Rewrite decode to what was encoded", () => {
  const encoder = new FrameEncoder();
  deepEqual(decodeReply(parse(encoder.reqCall(0, { kind: "none" }))), {
    rpc: 2,
    id: 0,
    action: "none",
  });
  deepEqual(decodeReply(parse(encoder.reqCall(0xffff_ffff, { kind: "none" }))), {
    rpc: 2,
    id: 0xffff_ffff,
    action: "none",
  });

  const body = Uint8Array.from([0, 0x80, 0xff, 10]);
  deepEqual(
    decodeReply(parse(encoder.reqCall(7, {
      kind: "stop",
      status: 403,
      headers: entries(["X-A", "1"], ["X-A", "2"], ["x-bin", "\xff\xfe"]),
      body,
    }))),
    {
      rpc: 2,
      id: 7,
      action: "stop",
      status: 403,
      headers: [["X-A", "1"], ["X-A", "2"], ["x-bin", "\xff\xfe"]],
      body,
    },
  );

  deepEqual(
    decodeReply(parse(encoder.reqCall(8, {
      kind: "rewrite",
      path: b("/new path"),
      headers: entries(["x-delete", null], ["x-change", "bar"]),
      args: entries(["d", null], ["a", "foo"], ["a", "bar"], ["e", ""]),
      respHeaders: entries(["x-resp", "1"]),
      body: b("abc\n"),
    }))),
    {
      rpc: 2,
      id: 8,
      action: "rewrite",
      path: "/new path",
      // A deleted header and a deleted arg have no value field at all (not "").
      headers: [["x-delete", null], ["x-change", "bar"]],
      args: [["d", null], ["a", "foo"], ["a", "bar"], ["e", ""]],
      respHeaders: [["x-resp", "1"]],
      body: b("abc\n"),
    },
  );
});

Deno.test("FrameEncoder.reqCall: empty vectors and bodies are left out, never sent empty", () => {
  const encoder = new FrameEncoder();
  const reply = decodeReply(parse(encoder.reqCall(1, {
    kind: "rewrite",
    path: null,
    headers: [],
    args: [],
    respHeaders: entries(["x", "1"]),
    body: new Uint8Array(0),
  })));
  deepEqual(reply, {
    rpc: 2,
    id: 1,
    action: "rewrite",
    path: null,
    headers: [],
    args: [],
    respHeaders: [["x", "1"]],
    body: null,
  });
  const stop = decodeReply(parse(encoder.reqCall(1, {
    kind: "stop",
    status: 200,
    headers: [],
    body: new Uint8Array(0),
  })));
  deepEqual(stop, { rpc: 2, id: 1, action: "stop", status: 200, headers: [], body: null });
});

Deno.test("FrameEncoder.respCall: id, status, the full header list and the body", () => {
  const encoder = new FrameEncoder();
  deepEqual(
    decodeReply(parse(encoder.respCall(
      9,
      304,
      entries(["Content-Type", "text/plain"], ["x-same", "one"], ["x-same", "two"]),
      null,
    ))),
    {
      rpc: 4,
      id: 9,
      status: 304,
      headers: [["Content-Type", "text/plain"], ["x-same", "one"], ["x-same", "two"]],
      body: null,
    },
  );
  deepEqual(decodeReply(parse(encoder.respCall(0, 0, [], b("cat")))), {
    rpc: 4,
    id: 0,
    status: 0,
    headers: [],
    body: b("cat"),
  });
});

Deno.test("FrameEncoder.extraInfo: Var with its name, ReqBody and RespBody", () => {
  const encoder = new FrameEncoder();
  const asked = (frame: Uint8Array) => {
    const parsed = parse(frame);
    equal(parsed.type, RpcType.ExtraInfo);
    return decodeAsk(parsed.payload);
  };
  deepEqual(asked(encoder.extraInfo("var", enc.encode("remote_addr"))), {
    kind: "var",
    name: "remote_addr",
  });
  deepEqual(asked(encoder.extraInfo("reqBody")), { kind: "reqBody" });
  deepEqual(asked(encoder.extraInfo("respBody")), { kind: "respBody" });
});

Deno.test("FrameEncoder: a reply over 16,777,215 bytes throws OversizeReplyError; the encoder recovers", () => {
  const encoder = new FrameEncoder();
  const huge = new Uint8Array(MAX_PAYLOAD + 1);
  throws(
    () => encoder.reqCall(1, { kind: "stop", status: 200, headers: [], body: huge }),
    (error: Error) => error instanceof OversizeReplyError && error.size > MAX_PAYLOAD,
  );
  throws(() => encoder.respCall(1, 200, [], huge), OversizeReplyError);
  // Just under the limit fits, with an exact length field.
  const big = encoder.reqCall(2, {
    kind: "stop",
    status: 200,
    headers: [],
    body: new Uint8Array(MAX_PAYLOAD - 100).fill(7),
  });
  const frame = parse(big);
  ok(frame.length <= MAX_PAYLOAD);
  // And the next, small reply is still right.
  deepEqual(decodeReply(parse(encoder.prepareConf(5))), { rpc: 1, token: 5 });
});

Deno.test("FrameEncoder: a frame stays valid until the next encode, so callers write it first", () => {
  const encoder = new FrameEncoder();
  const first = encoder.prepareConf(11).slice();
  encoder.prepareConf(12);
  deepEqual(decodeReply(parse(first)), { rpc: 1, token: 11 });
  // Many replies in a row through one builder decode independently.
  for (let i = 1; i <= 200; i++) {
    const frame = parse(encoder.reqCall(i, {
      kind: "rewrite",
      path: null,
      headers: entries([`x-${i}`, "v".repeat(i)]),
      args: [],
      respHeaders: [],
      body: null,
    }));
    const reply = decodeReply(frame);
    equal(reply.rpc === 2 && reply.action === "rewrite" && reply.headers[0]![1]!.length, i);
  }
});
