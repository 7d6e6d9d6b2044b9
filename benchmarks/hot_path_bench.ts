/**
 * Micro-benchmarks of the runner's per-call work (`deno bench benchmarks/hot_path_bench.ts`):
 * verifying a request, decoding a plugin's patch, encoding the reply, and a Stop patch's whole way
 * from its bytes to its reply frame.
 *
 * @module
 */
import { ByteWriter } from "../api/bytes.ts";
import { Patch, scanPatch } from "../api/patch.ts";
import { FrameEncoder } from "../protocol/encode.ts";
import { HTTP_REQ_CALL_REQ, verifyRoot } from "../protocol/verify.ts";
import { MAX_PAYLOAD } from "../protocol/frame.ts";
import { runSteps } from "../protocol/steps.ts";
import { requestAction } from "../api/reply.ts";
import { encodeReqCall } from "../tests/support/apisix.ts";

const request = encodeReqCall({
  id: 1234,
  srcIp: [127, 0, 0, 1],
  path: "/api/v1/users/12345/profile",
  args: [["page", "1"], ["limit", "20"], ["q", "x"]],
  headers: [
    ["host", "example.com"],
    ["user-agent", "curl/8"],
    ["accept", "*/*"],
    ["accept-encoding", "gzip"],
    ["x-request-id", "abc"],
    ["x-forwarded-for", "10.0.0.1"],
    ["content-type", "application/json"],
    ["authorization", "Bearer x"],
  ],
  token: 77,
});

const stop = new Patch();
stop.stop = true;
stop.status = 200;
stop.responseHeaders = [[new TextEncoder().encode("x-a"), new TextEncoder().encode("1")]];
stop.responseBody = new TextEncoder().encode("hello");
const out = new ByteWriter();
stop.encode(out);
const stopBytes = out.take();
const encoder = new FrameEncoder();

Deno.bench("verify an HTTPReqCall (3 args, 8 headers)", () => {
  verifyRoot(request, HTTP_REQ_CALL_REQ);
});

Deno.bench("decode a Stop patch", () => {
  Patch.decode(stopBytes);
});

Deno.bench("encode a Stop reply frame", () => {
  encoder.reqCall(1234, requestAction(stop));
});

Deno.bench("a Stop patch's bytes to its reply frame (scan, decode, action, encode)", () => {
  runSteps(scanPatch(stopBytes, false, MAX_PAYLOAD));
  encoder.reqCall(1234, requestAction(Patch.decode(stopBytes)));
});
