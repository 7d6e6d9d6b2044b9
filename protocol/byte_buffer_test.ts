import { deepEqual, equal } from "node:assert/strict";
import { Builder, ByteBuffer, Encoding } from "flatbuffers";
import { byteBuffer } from "./byte_buffer.ts";
import { HttpReqCallReq } from "./gen/http_req_call_req.ts";
import { TextEntry } from "./gen/text_entry.ts";

function request(): Uint8Array {
  const b = new Builder(256);
  const path = b.createString("/héllo");
  const name = b.createString("x-a");
  const value = b.createString("ünïcode");
  const entry = TextEntry.createTextEntry(b, name, value);
  const headers = HttpReqCallReq.createHeadersVector(b, [entry]);
  HttpReqCallReq.startHttpReqCallReq(b);
  HttpReqCallReq.addId(b, 7);
  HttpReqCallReq.addPath(b, path);
  HttpReqCallReq.addHeaders(b, headers);
  HttpReqCallReq.addConfToken(b, 3);
  b.finish(HttpReqCallReq.endHttpReqCallReq(b));
  return b.asUint8Array();
}

Deno.test("byteBuffer reads what new ByteBuffer reads, strings as text and as bytes", () => {
  const bytes = request();
  for (const bb of [byteBuffer(bytes), byteBuffer(bytes.slice())]) {
    const expected = HttpReqCallReq.getRootAsHttpReqCallReq(new ByteBuffer(bytes));
    const actual = HttpReqCallReq.getRootAsHttpReqCallReq(bb);
    equal(bb instanceof ByteBuffer, true);
    equal(actual.id(), expected.id());
    equal(actual.confToken(), 3);
    equal(actual.path(), "/héllo");
    deepEqual(actual.path(Encoding.UTF8_BYTES), expected.path(Encoding.UTF8_BYTES));
    equal(actual.headers(0)!.value(), "ünïcode");
    equal(actual.headersLength(), 1);
  }
});

Deno.test("byteBuffer buffers are independent: each reads its own bytes from position 0", () => {
  const a = byteBuffer(request());
  a.setPosition(8);
  const b = byteBuffer(new Uint8Array([1, 2, 3, 4]));
  equal(a.position(), 8);
  equal(b.position(), 0);
  equal(b.readUint32(0), 0x04030201);
  equal(a.capacity() > 4, true);
});
