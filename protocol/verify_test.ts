import { deepEqual, doesNotThrow, equal, throws } from "node:assert/strict";
import fc from "fast-check";
import * as flatbuffers from "flatbuffers";
import {
  encodeExtraInfoResp,
  encodePrepareConf,
  encodeReqCall,
  encodeRespCall,
} from "../tests/support/apisix.ts";
import { FrameEncoder } from "./encode.ts";
import { HttpReqCallReq } from "./gen/http_req_call_req.ts";
import { HttpRespCallReq } from "./gen/http_resp_call_req.ts";
import { PrepareConfReq } from "./gen/prepare_conf_req.ts";
import { TextEntry } from "./gen/text_entry.ts";
import {
  EXTRA_INFO_RESP,
  HTTP_REQ_CALL_REQ,
  HTTP_RESP_CALL_REQ,
  MalformedPayloadError,
  PREPARE_CONF_REQ,
  type TableShape,
  TEXT_ENTRY,
  verifyRoot,
} from "./verify.ts";

const EMPTY_TABLE = new Uint8Array([8, 0, 0, 0, 4, 0, 4, 0, 4, 0, 0, 0]);

const FULL_REQ_CALL = encodeReqCall({
  id: 77,
  srcIp: [127, 0, 0, 1],
  method: 3,
  path: "/hello world",
  args: [["xx", "y"], ["xx", "z"], ["y", ""], ["z", null]],
  headers: [["x-req", "foo"], ["x-req", "bar"], ["x-bin", "\xff\xfe"]],
  token: 0x1234_5678,
});

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function setU32(bytes: Uint8Array, at: number, value: number): Uint8Array {
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(at, value >>> 0, true);
  return bytes;
}

function u32(bytes: Uint8Array, at: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset).getUint32(at, true);
}

function malformed(bytes: Uint8Array, shape: TableShape, message: RegExp): void {
  throws(() => verifyRoot(bytes, shape), (error: Error) => {
    equal(error instanceof MalformedPayloadError, true, String(error));
    return message.test(error.message);
  });
}

Deno.test("verifyRoot accepts what APISIX's builder produces, and the empty table", () => {
  doesNotThrow(() => verifyRoot(FULL_REQ_CALL, HTTP_REQ_CALL_REQ));
  doesNotThrow(() => verifyRoot(encodeReqCall({ token: 1 }), HTTP_REQ_CALL_REQ));
  doesNotThrow(() =>
    verifyRoot(encodePrepareConf([["a", "1"], ["b", "2"]], "route#1#x#1"), PREPARE_CONF_REQ)
  );
  doesNotThrow(() => verifyRoot(encodePrepareConf(null), PREPARE_CONF_REQ));
  doesNotThrow(() =>
    verifyRoot(
      encodeRespCall({ id: 9, status: 200, headers: [["Server", "x"]], token: 5 }),
      HTTP_RESP_CALL_REQ,
    )
  );
  doesNotThrow(() => verifyRoot(encodeExtraInfoResp("127.0.0.1"), EXTRA_INFO_RESP));
  doesNotThrow(() => verifyRoot(encodeExtraInfoResp(""), EXTRA_INFO_RESP));
  doesNotThrow(() => verifyRoot(encodeExtraInfoResp(null), EXTRA_INFO_RESP));
  for (const shape of [PREPARE_CONF_REQ, HTTP_REQ_CALL_REQ, HTTP_RESP_CALL_REQ, EXTRA_INFO_RESP]) {
    doesNotThrow(() => verifyRoot(EMPTY_TABLE, shape));
  }
  // Trailing bytes after the table are ignored (APISIX never sends them; readers ignore them).
  const padded = new Uint8Array(FULL_REQ_CALL.length + 13);
  padded.set(FULL_REQ_CALL);
  doesNotThrow(() => verifyRoot(padded, HTTP_REQ_CALL_REQ));
});

Deno.test("verifyRoot accepts the runner's own replies, unions included", () => {
  const STOP: TableShape = ["u16", { tableVector: TEXT_ENTRY }, "bytes"];
  const REWRITE: TableShape = [
    "string",
    { tableVector: TEXT_ENTRY },
    { tableVector: TEXT_ENTRY },
    { tableVector: TEXT_ENTRY },
    "bytes",
  ];
  const RESP: TableShape = ["u32", "u8", { union: [STOP, REWRITE] }];
  const encoder = new FrameEncoder();
  const payloadOf = (frame: Uint8Array) => frame.slice(4);
  const enc = new TextEncoder();
  doesNotThrow(() =>
    verifyRoot(
      payloadOf(encoder.reqCall(5, {
        kind: "stop",
        status: 403,
        headers: [[enc.encode("x-a"), enc.encode("1")]],
        body: enc.encode("no"),
      })),
      RESP,
    )
  );
  doesNotThrow(() =>
    verifyRoot(
      payloadOf(encoder.reqCall(6, {
        kind: "rewrite",
        path: enc.encode("/p"),
        headers: [[enc.encode("x-d"), null]],
        args: [[enc.encode("a"), enc.encode("1")]],
        respHeaders: [[enc.encode("x-r"), enc.encode("2")]],
        body: enc.encode("body"),
      })),
      RESP,
    )
  );
  // A union value whose table is broken is caught through the union.
  const stop = payloadOf(
    encoder.reqCall(5, { kind: "stop", status: 403, headers: [], body: null }),
  );
  const root = u32(stop, 0);
  const vtable = root - view(stop).getInt32(root, true);
  const actionField = view(stop).getUint16(vtable + 4 + 2 * 2, true);
  setU32(stop, root + actionField, 0x7fff_0000);
  malformed(stop, RESP, /table offset \d+ out of bounds/);
});

Deno.test("verifyRoot rejects payloads shorter than a table and roots out of bounds", () => {
  for (let length = 0; length < 12; length++) {
    malformed(new Uint8Array(length), HTTP_REQ_CALL_REQ, /shorter than any table/);
  }
  malformed(
    setU32(FULL_REQ_CALL.slice(), 0, FULL_REQ_CALL.length + 8),
    HTTP_REQ_CALL_REQ,
    /root: table offset/,
  );
  malformed(setU32(FULL_REQ_CALL.slice(), 0, 0xffff_fffc), HTTP_REQ_CALL_REQ, /root: table offset/);
  malformed(setU32(FULL_REQ_CALL.slice(), 0, 2), HTTP_REQ_CALL_REQ, /root: table offset 2/);
});

Deno.test("verifyRoot rejects bad vtables", () => {
  const root = u32(FULL_REQ_CALL, 0);
  // The soffset to the vtable pointing before the buffer, or past its end.
  malformed(setU32(FULL_REQ_CALL.slice(), root, root + 4), HTTP_REQ_CALL_REQ, /vtable offset/);
  malformed(
    setU32(FULL_REQ_CALL.slice(), root, -FULL_REQ_CALL.length),
    HTTP_REQ_CALL_REQ,
    /vtable offset/,
  );
  const vtable = root - view(FULL_REQ_CALL).getInt32(root, true);
  const withVtableSize = (size: number) => {
    const p = FULL_REQ_CALL.slice();
    view(p).setUint16(vtable, size, true);
    return p;
  };
  malformed(withVtableSize(3), HTTP_REQ_CALL_REQ, /vtable size 3/);
  malformed(withVtableSize(7), HTTP_REQ_CALL_REQ, /vtable size 7/);
  malformed(withVtableSize(0xfffe), HTTP_REQ_CALL_REQ, /vtable size/);
  const withTableSize = (size: number) => {
    const p = FULL_REQ_CALL.slice();
    view(p).setUint16(vtable + 2, size, true);
    return p;
  };
  malformed(withTableSize(0xfff0), HTTP_REQ_CALL_REQ, /table size/);
  // A field offset past the table's own size.
  const field = FULL_REQ_CALL.slice();
  view(field).setUint16(vtable + 4 + 2 * 6, 0x7f00, true);
  malformed(field, HTTP_REQ_CALL_REQ, /field 6 outside its table/);
});

Deno.test("verifyRoot rejects strings, byte vectors and table vectors longer than the payload", () => {
  const bytes = new TextDecoder("latin1").decode(FULL_REQ_CALL);
  // The length prefix of a string sits just before its first byte.
  const pathAt = bytes.indexOf("/hello world");
  malformed(
    setU32(FULL_REQ_CALL.slice(), pathAt - 4, 1 << 20),
    HTTP_REQ_CALL_REQ,
    /root\.3: 1048576 elements/,
  );
  // Exactly at the end with no room for the NUL terminator.
  malformed(
    setU32(FULL_REQ_CALL.slice(), pathAt - 4, FULL_REQ_CALL.length - pathAt),
    HTTP_REQ_CALL_REQ,
    /root\.3/,
  );
  const req = HttpReqCallReq.getRootAsHttpReqCallReq(new flatbuffers.ByteBuffer(FULL_REQ_CALL));
  const srcIpAt = req.srcIpArray()!.byteOffset - FULL_REQ_CALL.byteOffset;
  malformed(setU32(FULL_REQ_CALL.slice(), srcIpAt - 4, 0xffff_ffff), HTTP_REQ_CALL_REQ, /root\.1/);
  // The header vector's count.
  const headersField = findVectorCount(FULL_REQ_CALL, 3);
  malformed(setU32(FULL_REQ_CALL.slice(), headersField, 100_000), HTTP_REQ_CALL_REQ, /root\.(4|5)/);
  // A header entry's table offset pointing outside.
  const entryOffsetAt = headersField + 4;
  malformed(
    setU32(FULL_REQ_CALL.slice(), entryOffsetAt, 0x0fff_ff00),
    HTTP_REQ_CALL_REQ,
    /table offset \d+ out of bounds/,
  );
});

/** The offset of the first u32 in `bytes` equal to `count` that is followed by table offsets. */
function findVectorCount(bytes: Uint8Array, count: number): number {
  const req = HttpReqCallReq.getRootAsHttpReqCallReq(new flatbuffers.ByteBuffer(bytes));
  equal(req.headersLength(), count);
  for (let at = 4; at + 4 <= bytes.length; at += 4) {
    if (u32(bytes, at) !== count) continue;
    const first = at + 4 + u32(bytes, at + 4);
    if (first < bytes.length && first % 4 === 0) return at;
  }
  throw new Error("no vector count found");
}

/**
 * Reads every field with the generated code (what the runner and the views do) and checks that
 * nothing was cut short: the generated readers clamp out-of-bounds vectors silently.
 */
function readEverything(bytes: Uint8Array): void {
  const req = HttpReqCallReq.getRootAsHttpReqCallReq(new flatbuffers.ByteBuffer(bytes));
  const whole = (vector: Uint8Array | null, what: string) => {
    if (!vector) return;
    const start = vector.byteOffset - bytes.byteOffset;
    if (
      start < 4 || start + vector.length > bytes.length || u32(bytes, start - 4) !== vector.length
    ) {
      throw new RangeError(`${what} was cut short: it reaches past the payload`);
    }
  };
  req.id();
  req.method();
  req.confToken();
  whole(req.srcIpArray(), "src_ip");
  whole(req.path(flatbuffers.Encoding.UTF8_BYTES) as Uint8Array | null, "path");
  const entry = new TextEntry();
  for (
    const [count, at] of [
      [req.argsLength(), (i: number) => req.args(i, entry)],
      [req.headersLength(), (i: number) => req.headers(i, entry)],
    ] as const
  ) {
    for (let i = 0; i < count; i++) {
      const e = at(i)!;
      whole(e.name(flatbuffers.Encoding.UTF8_BYTES) as Uint8Array | null, "a name");
      whole(e.value(flatbuffers.Encoding.UTF8_BYTES) as Uint8Array | null, "a value");
    }
  }
}

Deno.test("verifyRoot: a mutated request either fails verification or reads safely (property)", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 6,
      }),
      fc.integer({ min: 0, max: 40 }),
      (mutations, cut) => {
        const bytes = FULL_REQ_CALL.slice(0, FULL_REQ_CALL.length - (cut % 8 === 0 ? cut : 0));
        for (const [at, value] of mutations) bytes[at % bytes.length] = value;
        let verified = true;
        try {
          verifyRoot(bytes, HTTP_REQ_CALL_REQ);
        } catch (error) {
          if (!(error instanceof MalformedPayloadError)) throw error;
          verified = false;
        }
        if (verified) readEverything(bytes);
      },
    ),
    { numRuns: 3000 },
  );
});

Deno.test("verifyRoot: conf and response-call tables read back what was encoded", () => {
  const conf = encodePrepareConf([["say", '{"body":"hi"}'], ["x", ""]], "route#1#p#2");
  verifyRoot(conf, PREPARE_CONF_REQ);
  const req = PrepareConfReq.getRootAsPrepareConfReq(new flatbuffers.ByteBuffer(conf));
  equal(req.key(), "route#1#p#2");
  deepEqual(
    Array.from({ length: req.confLength() }, (_, i) => [req.conf(i)!.name(), req.conf(i)!.value()]),
    [["say", '{"body":"hi"}'], ["x", ""]],
  );
  const resp = encodeRespCall({ id: 3, status: 304, headers: [["A", "1"]], token: 8 });
  verifyRoot(resp, HTTP_RESP_CALL_REQ);
  const r = HttpRespCallReq.getRootAsHttpRespCallReq(new flatbuffers.ByteBuffer(resp));
  deepEqual([r.id(), r.status(), r.confToken(), r.headersLength()], [3, 304, 8, 1]);
});
