import { deepEqual as assertEquals } from "node:assert/strict";
import * as flatbuffers from "flatbuffers";
import { Action } from "./gen/action.ts";
import { ErrResp } from "./gen/err_resp.ts";
import { ExtraInfoResp } from "./gen/extra_info_resp.ts";
import { HttpReqCallResp } from "./gen/http_req_call_resp.ts";
import { PrepareConfResp } from "./gen/prepare_conf_resp.ts";
import { Stop } from "./gen/stop.ts";
import { ERROR_FRAMES, FrameEncoder } from "./encode.ts";
import { ErrCode } from "./frame.ts";
import { EXTRA_INFO_RESP, verifyRoot } from "./verify.ts";

// Byte fixtures of PROTOCOL.md Appendix B (built by flatc 2.0.8 from upstream ext-plugin.fbs).
function hex(text: string): Uint8Array {
  const digits = text.replaceAll(" ", "");
  return Uint8Array.from(
    { length: digits.length / 2 },
    (_, i) => parseInt(digits.slice(2 * i, 2 * i + 2), 16),
  );
}

const EMPTY_TABLE = hex("08000000 04000400 04000000");
const PREPARE_CONF_RESP_1 = hex("0c000000 00000600 08000400 06000000 01000000");
const ERR_CONF_TOKEN_NOT_FOUND = hex("0c000000 00000600 08000700 06000000 00000002");
const EXTRA_INFO_RESP_127 = hex("0c000000 00000600 08000400 06000000 04000000 03000000 31323700");
const STOP_403_NO = hex(
  "10000000 00000a00 0e000000 07000800 0a000000 00000001 10000000 00000a00 0c000600 " +
    "00000800 0a000000 00009301 04000000 02000000 6e6f0000",
);

function frame(type: number, payload: Uint8Array): Uint8Array {
  return Uint8Array.from([type, 0, payload.length >> 8, payload.length & 0xff, ...payload]);
}

Deno.test("the empty table decodes as a NONE reply and re-encodes byte for byte", () => {
  const resp = HttpReqCallResp.getRootAsHttpReqCallResp(new flatbuffers.ByteBuffer(EMPTY_TABLE));
  assertEquals(resp.id(), 0);
  assertEquals(resp.actionType(), Action.NONE);
  assertEquals(new FrameEncoder().reqCall(0, { kind: "none" }), frame(2, EMPTY_TABLE));
  assertEquals(ERROR_FRAMES[ErrCode.BadRequest], frame(0, EMPTY_TABLE));
});

Deno.test("PrepareConf.Resp{conf_token=1} round-trips", () => {
  const resp = PrepareConfResp.getRootAsPrepareConfResp(
    new flatbuffers.ByteBuffer(PREPARE_CONF_RESP_1),
  );
  assertEquals(resp.confToken(), 1);
  assertEquals(new FrameEncoder().prepareConf(1), frame(1, PREPARE_CONF_RESP_1));
});

Deno.test("Err.Resp{CONF_TOKEN_NOT_FOUND} round-trips under RPC type 0", () => {
  const resp = ErrResp.getRootAsErrResp(new flatbuffers.ByteBuffer(ERR_CONF_TOKEN_NOT_FOUND));
  assertEquals(resp.code(), ErrCode.ConfTokenNotFound);
  assertEquals(ERROR_FRAMES[ErrCode.ConfTokenNotFound], frame(0, ERR_CONF_TOKEN_NOT_FOUND));
});

Deno.test('ExtraInfo.Resp{result="127"} verifies, decodes and re-encodes', () => {
  verifyRoot(EXTRA_INFO_RESP_127, EXTRA_INFO_RESP);
  const resp = ExtraInfoResp.getRootAsExtraInfoResp(
    new flatbuffers.ByteBuffer(EXTRA_INFO_RESP_127),
  );
  assertEquals(new TextDecoder().decode(resp.resultArray()!), "127");
  const builder = new flatbuffers.Builder(64);
  const result = builder.createByteVector(new TextEncoder().encode("127"));
  builder.finish(ExtraInfoResp.createExtraInfoResp(builder, result));
  assertEquals(builder.asUint8Array(), EXTRA_INFO_RESP_127);
});

Deno.test('HTTPReqCall.Resp{Stop{403, body "no"}} round-trips', () => {
  const resp = HttpReqCallResp.getRootAsHttpReqCallResp(new flatbuffers.ByteBuffer(STOP_403_NO));
  assertEquals(resp.actionType(), Action.Stop);
  const stop = resp.action(new Stop()) as Stop;
  assertEquals(stop.status(), 403);
  assertEquals(new TextDecoder().decode(stop.bodyArray()!), "no");
  const encoded = new FrameEncoder().reqCall(0, {
    kind: "stop",
    status: 403,
    headers: [],
    body: new TextEncoder().encode("no"),
  });
  assertEquals(encoded, frame(2, STOP_403_NO));
});
