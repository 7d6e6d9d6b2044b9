import { deepEqual, equal, rejects, throws } from "node:assert/strict";
import { ByteBuffer } from "flatbuffers";
import { HttpReqCallReq } from "../protocol/gen/http_req_call_req.ts";
import { HttpRespCallReq } from "../protocol/gen/http_resp_call_req.ts";
import { encodeReqCall, encodeRespCall, parseIp, type ReqCallFields } from "../testing/wire.ts";
import { decodeLatin1, encodeLatin1, encodeUtf8 } from "./bytes.ts";
import { Patch } from "./patch.ts";
import {
  type CallHost,
  formatIp,
  RequestView,
  ResponseWriter,
  UpstreamResponseView,
} from "./views.ts";

/** A CallHost that answers from a table and records questions and warnings. */
function host(answers: Record<string, string | null> = {}) {
  const asked: string[] = [];
  const warnings: string[] = [];
  const callHost: CallHost = {
    ask(info, name) {
      const key = info === "var" ? `var:${name}` : info;
      asked.push(key);
      const value = answers[key];
      return Promise.resolve(value === undefined || value === null ? null : encodeUtf8(value));
    },
    warn: (message) => warnings.push(message),
  };
  return { callHost, asked, warnings };
}

function request(fields: Partial<ReqCallFields> = {}): HttpReqCallReq {
  const payload = encodeReqCall({
    id: 0,
    srcIp: parseIp("127.0.0.1"),
    method: "GET",
    path: "/",
    args: [],
    headers: [],
    confToken: 1,
    ...fields,
  });
  return HttpReqCallReq.getRootAsHttpReqCallReq(new ByteBuffer(payload));
}

function collect(...views: Array<{ collect(patch: Patch): void }>): Patch {
  const patch = new Patch();
  for (const view of views) view.collect(patch);
  return patch;
}

Deno.test("RequestView reads every field and reading changes nothing", async () => {
  const { callHost, asked } = host({ "var:route_id": "1", reqBody: "body" });
  const req = new RequestView(
    request({
      id: 77,
      srcIp: parseIp("::1"),
      method: "TRACE",
      path: "/a b/é",
      args: [["x", "1"], ["x", "2"], ["f", null]],
      headers: [["x-h", "1"], ["x-h", "2"]],
    }),
    null,
    callHost,
  );
  equal(req.id, 77);
  equal(req.srcIp, "::1");
  equal(req.method, "TRACE");
  equal(req.path, "/a b/é");
  deepEqual(req.args.raw(), [["x", "1"], ["x", "2"], ["f", null]]);
  deepEqual(req.headers.getAll("X-H"), ["1", "2"]);
  equal(await req.var("route_id"), "1");
  equal(await req.var("route_id"), "1");
  equal(await req.var("unset"), null);
  equal(await req.text(), "body");
  deepEqual(await req.json().catch((e) => e.name), "SyntaxError");
  deepEqual(asked, ["var:route_id", "var:unset", "reqBody"]);
  equal(collect(req).empty, true);
});

Deno.test("RequestView turns writes into a patch", () => {
  const req = new RequestView(
    request({ path: "/old", args: [["keep", "1"], ["drop", "1"]], headers: [["x-old", "1"]] }),
    null,
    host().callHost,
  );
  req.path = "/new?q=1&q=2";
  req.headers.delete("x-old");
  req.headers.append("x-new", "a");
  req.args.delete("drop");
  req.setBody(encodeLatin1("\x00\x80"));
  const patch = collect(req);
  equal(decodeLatin1(patch.path!), "/new");
  deepEqual([...patch.headers!].map(([n, v]) => [n, v.map(decodeLatin1)]), [["x-old", []], [
    "x-new",
    ["a"],
  ]]);
  deepEqual(
    [...patch.args!].map(([n, v]) => [n, v.map((b) => b && decodeLatin1(b))]),
    [["q", ["1", "2"]], ["drop", []]],
  );
  deepEqual([...patch.requestBody!], [0, 0x80]);
  throws(() => (req.path = "relative"), /must start with "\/"/);
});

Deno.test("RequestView starts from an earlier plugin's changes without asking again", async () => {
  const overlay = new Patch();
  overlay.path = encodeUtf8("/changed");
  overlay.headers = new Map([["x-a", [encodeLatin1("new")]], ["x-gone", []]]);
  overlay.args = new Map([["a", [encodeUtf8("é")]]]);
  overlay.requestBody = encodeUtf8("replaced");
  const { callHost, asked } = host();
  const req = new RequestView(
    request({ headers: [["x-a", "old"], ["x-gone", "1"]], args: [["a", "1"]] }),
    overlay,
    callHost,
  );
  equal(req.path, "/changed");
  deepEqual([...req.headers], [["x-a", "new"]]);
  equal(req.args.get("a"), "é");
  equal(await req.text(), "replaced");
  deepEqual(asked, []);
  equal(collect(req).empty, true, "an earlier plugin's changes are not this plugin's");
  // The body is backed by an ArrayBuffer, as Web APIs need.
  await crypto.subtle.digest("SHA-256", await req.body());
});

Deno.test("RequestView ignores an empty body with a warning", () => {
  const { callHost, warnings } = host();
  const req = new RequestView(request(), null, callHost);
  req.setBody("");
  equal(collect(req).empty, true);
  equal(warnings.length, 1);
});

Deno.test("formatIp prints IPv4, IPv6 (RFC 5952) and nothing for other lengths", () => {
  equal(formatIp(Uint8Array.of(10, 0, 0, 255)), "10.0.0.255");
  equal(formatIp(parseIp("2001:db8:0:0:0:0:2:1")), "2001:db8::2:1");
  equal(formatIp(parseIp("2001:db8:0:1:1:1:1:1")), "2001:db8:0:1:1:1:1:1");
  equal(formatIp(parseIp("2001:0:0:1:0:0:0:1")), "2001:0:0:1::1");
  equal(formatIp(null), "");
  equal(formatIp(Uint8Array.of(1, 2)), "");
});

Deno.test("ResponseWriter stops on status or body and adds headers otherwise", () => {
  const { callHost, warnings } = host();
  const proxied = new ResponseWriter(null, callHost);
  equal(proxied.status, 200);
  equal(proxied.stopped, false);
  proxied.headers.set("x-a", "1");
  proxied.headers.set("server", "mine");
  const patch = collect(proxied);
  equal(patch.stop, false);
  deepEqual(patch.responseHeaders!.map(([n, v]) => [decodeLatin1(n), decodeLatin1(v)]), [[
    "x-a",
    "1",
  ]]);
  equal(warnings.length, 1);
  equal(/server/.test(warnings[0]!), true);

  const answered = new ResponseWriter(null, callHost);
  answered.headers.set("server", "kept when answering");
  answered.body = "b";
  equal(answered.stopped, true);
  const stop = collect(answered);
  equal(stop.stop, true);
  equal(stop.status, 200);
  equal(decodeLatin1(stop.responseBody!), "b");
  equal(stop.responseHeaders!.length, 1);

  throws(() => (answered.status = 99), RangeError);
  throws(() => (answered.status = 200.5), RangeError);
  throws(() => (answered.body = 5 as never), TypeError);
  equal(collect(new ResponseWriter(null, callHost)).empty, true);
});

Deno.test("UpstreamResponseView reads once, writes status, headers and body", async () => {
  const payload = encodeRespCall({
    id: 9,
    status: 404,
    headers: [["Content-Type", "text/html"], ["X-Dup", "1"], ["x-dup", "2"]],
    confToken: 1,
  });
  const { callHost, asked, warnings } = host({ respBody: "<p>", "var:uri": "/u" });
  const res = new UpstreamResponseView(
    HttpRespCallReq.getRootAsHttpRespCallReq(new ByteBuffer(payload)),
    null,
    callHost,
  );
  equal(res.id, 9);
  equal(res.status, 404);
  deepEqual(res.rawHeaders, [["Content-Type", "text/html"], ["X-Dup", "1"], ["x-dup", "2"]]);
  deepEqual(res.headers.getAll("x-dup"), ["1", "2"]);
  equal(await res.text(), "<p>");
  equal(await res.text(), "<p>");
  equal(await res.var("uri"), "/u");
  deepEqual(asked, ["respBody", "var:uri"]);
  equal(collect(res).empty, true);
  res.status = 200;
  res.headers.delete("x-dup");
  res.setBody("");
  equal(warnings.length, 1);
  res.setBody("ok");
  equal(await res.text(), "ok");
  const patch = collect(res);
  equal(patch.status, 200);
  // Only the changed name travels; the runner keeps the upstream's other headers as they came.
  deepEqual([...patch.headers!].map(([n, v]) => [n, v.length]), [["x-dup", 0]]);
  equal(patch.responseHeaders, null);
  equal(decodeLatin1(patch.responseBody!), "ok");
  throws(() => (res.status = 1000), RangeError);
  await rejects(res.json(), SyntaxError);
});
