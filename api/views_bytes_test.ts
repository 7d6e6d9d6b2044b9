import { deepEqual, equal, match } from "node:assert/strict";
import { ByteBuffer } from "flatbuffers";
import { HttpReqCallReq } from "../protocol/gen/http_req_call_req.ts";
import { bytes, encodeReqCall } from "../tests/support/apisix.ts";
import { Patch } from "./patch.ts";
import { type CallHost, RequestView } from "./views.ts";

// Requests whose path and args carry bytes that are not UTF-8 (APISIX percent-decodes `%FF`).
function view(fields: Parameters<typeof encodeReqCall>[0], warnings: string[] = []): RequestView {
  const host: CallHost = {
    ask: () => Promise.resolve(null),
    warn: (message) => warnings.push(message),
  };
  const req = HttpReqCallReq.getRootAsHttpReqCallReq(new ByteBuffer(encodeReqCall(fields)));
  return new RequestView(req, null, host);
}

Deno.test("an arg value that is not UTF-8 keeps its bytes when the plugin appends beside it", () => {
  const req = view({ args: [["q", "\xff\xfe"], ["n", "1"]], token: 1 });
  req.args.append("q", "é");
  const patch = new Patch();
  req.collect(patch);
  deepEqual([...patch.args!.keys()], ["q"]);
  deepEqual(patch.args!.get("q"), [bytes("\xff\xfe"), new TextEncoder().encode("é")]);
});

Deno.test("a path that is not UTF-8 keeps its bytes when the plugin sets it to itself", () => {
  const req = view({ path: "/a\xff", token: 1 });
  const same = req.path;
  req.path = same;
  const patch = new Patch();
  req.collect(patch);
  deepEqual(patch.path, bytes("/a\xff"));
});

Deno.test("valid UTF-8 with a literal U+FFFD is still encoded from the text", () => {
  const req = view({ path: "/\xef\xbf\xbd", token: 1 });
  equal(req.path, "/\uFFFD");
  req.path = req.path + "x";
  const patch = new Patch();
  req.collect(patch);
  deepEqual(patch.path, new TextEncoder().encode("/\uFFFDx"));
});

Deno.test("deleting the host header is ignored with a warning", () => {
  const warnings: string[] = [];
  const req = view({ headers: [["host", "example.com"], ["x-a", "1"]], token: 1 }, warnings);
  req.headers.delete("host");
  req.headers.delete("x-a");
  const patch = new Patch();
  req.collect(patch);
  deepEqual([...patch.headers!.keys()], ["x-a"]);
  equal(warnings.length, 1);
  match(warnings[0]!, /host/);
});
