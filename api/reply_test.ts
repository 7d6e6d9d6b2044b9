import { deepEqual, equal } from "node:assert/strict";
import * as flatbuffers from "flatbuffers";
import { Patch } from "./patch.ts";
import { ByteWriter } from "./bytes.ts";
import { FrameEncoder } from "../protocol/encode.ts";
import { HttpRespCallReq } from "../protocol/gen/http_resp_call_req.ts";
import type { ReqCallAction, WireEntries, WireEntry } from "../protocol/encode.ts";
import { encodeRespCall, type Entry } from "../tests/support/apisix.ts";
import { isDroppedResponseHeader, requestAction, responseHeaders } from "./reply.ts";

const b = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));
const text = (bytes: Uint8Array | null) => bytes === null ? null : String.fromCharCode(...bytes);

/** The entries of a list, as an array. */
const all = (entries: WireEntries): WireEntry[] =>
  Array.from({ length: entries.length }, (_, i) => entries.at(i)!);

/** An action with its byte strings as Latin-1 text, for comparison. */
function readable(action: ReqCallAction): Record<string, unknown> {
  const list = (entries: WireEntries) =>
    Array.from({ length: entries.length }, (_, i) => entries.at(i)!).map((
      [n, v],
    ) => [text(n), text(v)]);
  if (action.kind === "none") return action;
  if (action.kind === "stop") {
    return { ...action, headers: list(action.headers), body: text(action.body) };
  }
  return {
    kind: action.kind,
    path: text(action.path),
    headers: list(action.headers),
    args: list(action.args),
    respHeaders: list(action.respHeaders),
    body: text(action.body),
  };
}

function respReq(headers: Entry[]): HttpRespCallReq {
  return HttpRespCallReq.getRootAsHttpRespCallReq(
    new flatbuffers.ByteBuffer(encodeRespCall({ id: 1, status: 200, headers, token: 1 })),
  );
}

Deno.test("requestAction: no patch, or a patch that changes nothing, is NONE", () => {
  deepEqual(requestAction(null), { kind: "none" });
  deepEqual(requestAction(new Patch()), { kind: "none" });
  const emptyMaps = new Patch();
  emptyMaps.headers = new Map();
  emptyMaps.args = new Map();
  emptyMaps.responseHeaders = [];
  deepEqual(requestAction(emptyMaps), { kind: "none" });
});

Deno.test("requestAction: a stop is a Stop; status 0 becomes 200; headers keep their order", () => {
  const patch = new Patch();
  patch.stop = true;
  patch.responseHeaders = [[b("x-a"), b("1")], [b("x-b"), b("b")], [b("x-a"), b("2")]];
  patch.responseBody = b("no");
  // Request changes made before the stop are not sent: APISIX ends the request.
  patch.headers = new Map([["x-h", [b("1")]]]);
  deepEqual(readable(requestAction(patch)), {
    kind: "stop",
    status: 200,
    headers: [["x-a", "1"], ["x-b", "b"], ["x-a", "2"]],
    body: "no",
  });
  patch.status = 403;
  equal((requestAction(patch) as { status: number }).status, 403);
  const bare = new Patch();
  bare.stop = true;
  bare.status = 204;
  deepEqual(readable(requestAction(bare)), { kind: "stop", status: 204, headers: [], body: null });
});

Deno.test("requestAction: request headers: one set entry per name, a delete has no value", () => {
  const patch = new Patch();
  patch.headers = new Map([
    ["x-delete", []],
    ["x-change", [b("bar")]],
    ["x-multi", [b("1"), b("2")]],
    ["x-bin", [b("\xff\xfe")]],
  ]);
  deepEqual(readable(requestAction(patch)), {
    kind: "rewrite",
    path: null,
    headers: [["x-delete", null], ["x-change", "bar"], ["x-multi", "1, 2"], ["x-bin", "\xff\xfe"]],
    args: [],
    respHeaders: [],
    body: null,
  });
});

Deno.test('requestAction: args: delete is value-less, values replace then append, flags become ""', () => {
  const patch = new Patch();
  patch.args = new Map<string, (Uint8Array | null)[]>([
    ["d", []],
    ["a", [b("foo"), b("bar")]],
    ["flag", [null, b("x")]],
  ]);
  deepEqual(readable(requestAction(patch)).args, [
    ["d", null],
    ["a", "foo"],
    ["a", "bar"],
    ["flag", ""],
    ["flag", "x"],
  ]);
});

Deno.test("requestAction: path, body and response headers alone each make a Rewrite", () => {
  const path = new Patch();
  path.path = b("/new path");
  deepEqual(readable(requestAction(path)), {
    kind: "rewrite",
    path: "/new path",
    headers: [],
    args: [],
    respHeaders: [],
    body: null,
  });
  const body = new Patch();
  body.requestBody = b("abc\n");
  equal(readable(requestAction(body)).body, "abc\n");
  const resp = new Patch();
  resp.responseHeaders = [[b("x-resp"), b("1")], [b("x-resp"), b("2")]];
  deepEqual(readable(requestAction(resp)).respHeaders, [["x-resp", "1"], ["x-resp", "2"]]);
});

Deno.test("isDroppedResponseHeader: hop-by-hop names and Content-Length, in any case", () => {
  for (
    const name of [
      "Connection",
      "keep-alive",
      "Transfer-Encoding",
      "TE",
      "trailer",
      "Upgrade",
      "content-length",
      "Proxy-Connection",
      "proxy-authenticate",
    ]
  ) {
    equal(isDroppedResponseHeader(name), true, name);
  }
  for (const name of ["Content-Type", "Server", "Location", "Set-Cookie", "content-encoding"]) {
    equal(isDroppedResponseHeader(name), false, name);
  }
});

Deno.test("responseHeaders: unchanged, the upstream list minus dropped names, case and order kept", () => {
  const req = respReq([
    ["Content-Type", "text/plain"],
    ["Content-Length", "12"],
    ["Server", "openresty"],
    ["Connection", "close"],
    ["Set-Cookie", "a=1"],
    ["Set-Cookie", "b=2"],
    ["X-Empty", null],
    ["TE", "trailers"],
    ["Keep-Alive", "timeout=5"],
    ["TRANSFER-ENCODING", "chunked"],
    ["Trailer", "x"],
    ["upgrade", "h2c"],
    ["Proxy-Authenticate", "Basic"],
    ["proxy-x", "1"],
    ["Pragma", "no-cache"],
    ["Prox", "kept: shorter than proxy-"],
    ["Te-X", "kept"],
  ]);
  const list = (entries: WireEntries) => all(entries).map(([n, v]) => [text(n), text(v)]);
  const expected = [
    ["Content-Type", "text/plain"],
    ["Server", "openresty"],
    ["Set-Cookie", "a=1"],
    ["Set-Cookie", "b=2"],
    ["X-Empty", ""],
    ["Pragma", "no-cache"],
    ["Prox", "kept: shorter than proxy-"],
    ["Te-X", "kept"],
  ];
  deepEqual(list(responseHeaders(null, req)), expected);
  const statusOnly = new Patch();
  statusOnly.status = 304;
  deepEqual(list(responseHeaders(statusOnly, req)), expected);
});

Deno.test("responseHeaders: changed names replace the upstream's, unchanged ones stay as they came", () => {
  const req = respReq([
    ["Content-Type", "text/plain"],
    ["Server", "openresty"],
    ["X-Same", "zero"],
    ["X-Samf", "kept: the length of a changed name, another name"],
    ["Content-Length", "3"],
  ]);
  const patch = new Patch();
  patch.headers = new Map([
    ["x-same", [b("one"), b("two")]],
    ["server", []],
    ["transfer-encoding", [b("chunked")]],
  ]);
  deepEqual(
    all(responseHeaders(patch, req)).map(([n, v]) => [text(n), text(v)]),
    [
      ["Content-Type", "text/plain"],
      ["X-Samf", "kept: the length of a changed name, another name"],
      ["x-same", "one"],
      ["x-same", "two"],
    ],
  );
});

/** A patch of more than a few entries: multi-valued, deleted, value-less and empty entries. */
function largePatchBytes(options: { stop?: boolean; repeat?: boolean } = {}): Uint8Array {
  const patch = new Patch();
  patch.stop = options.stop ?? false;
  patch.path = b("/p");
  patch.headers = new Map();
  for (let i = 0; i < 100; i++) {
    patch.headers.set(
      `x-${i}`,
      i % 3 === 0 ? [] : i % 3 === 1 ? [b(`v${i}`)] : [b("a"), b("\xff")],
    );
  }
  patch.args = new Map();
  for (let i = 0; i < 100; i++) {
    patch.args.set(`a${i}`, i % 3 === 0 ? [] : i % 3 === 1 ? [b(""), null] : [b(`w${i}`)]);
  }
  patch.responseHeaders = Array.from({ length: 80 }, (_, i) => [b(`r-${i % 7}`), b(`${i}`)]);
  patch.requestBody = b("body");
  patch.responseBody = b("stop body");
  const out = new ByteWriter();
  patch.encode(out);
  if (options.repeat) {
    // A record for a name already set: its last values win, in its first place.
    const again = new Patch();
    again.headers = new Map([["x-5", [b("again")]]]);
    again.encode(out);
  }
  return out.take().slice();
}

/** The reply frame of a decoded patch, its lists read into objects or not. */
function replyOf(bytes: Uint8Array, lists: "offsets" | "objects"): Uint8Array {
  const patch = Patch.decode(bytes);
  if (lists === "objects") patch.headers;
  equal(patch.lazyLists !== null, lists === "offsets");
  return new FrameEncoder().reqCall(7, requestAction(patch)).slice();
}

Deno.test("requestAction: a large decoded patch answers from its bytes exactly as from its objects", () => {
  for (const stop of [false, true]) {
    const bytes = largePatchBytes({ stop });
    deepEqual(replyOf(bytes, "offsets"), replyOf(bytes, "objects"));
  }
});

Deno.test("a large patch that repeats a name is read into objects: the last values, in the first place", () => {
  const patch = Patch.decode(largePatchBytes({ repeat: true }));
  equal(patch.lazyLists, null);
  const names = [...patch.headers!.keys()];
  equal(names.indexOf("x-5"), 5);
  deepEqual(patch.headers!.get("x-5")!.map(text), ["again"]);
});

Deno.test("a large decoded patch re-encodes and merges as its lists read into objects do", () => {
  const bytes = largePatchBytes();
  const lazy = Patch.decode(bytes);
  const read = Patch.decode(bytes);
  read.headers;
  const encode = (patch: Patch) => {
    const out = new ByteWriter();
    patch.encode(out);
    return out.take().slice();
  };
  deepEqual(encode(lazy), encode(read));
  deepEqual(encode(lazy), bytes);
  equal(lazy.lazyLists !== null, true, "encoding does not read the lists into objects");
  const merged = Patch.decode(largePatchBytes({ stop: true }));
  merged.merge(Patch.decode(bytes));
  const expected = Patch.decode(largePatchBytes({ stop: true }));
  expected.headers;
  expected.merge(read);
  deepEqual(encode(merged), encode(expected));
  equal(lazy.empty, false);
  // A value flag other than 1 (read as present) is written back as the encoder writes it.
  const odd = new ByteWriter();
  odd.raw(bytes).u8(5).bytes(b("zz")).u16(2).u8(7).bytes(b("x")).u8(0);
  const oddBytes = odd.take().slice();
  const oddRead = Patch.decode(oddBytes);
  oddRead.args;
  deepEqual(encode(Patch.decode(oddBytes)), encode(oddRead));
});

Deno.test("responseHeaders: a large decoded patch answers from its bytes exactly as from its objects", () => {
  const upstream: Entry[] = [];
  for (let i = 0; i < 300; i++) upstream.push([i % 2 ? `X-${i}` : `Keep-${i}`, `u${i}`]);
  upstream.push(["Connection", "close"], ["Content-Length", "3"], ["X-Null", null]);
  const req = respReq(upstream);
  const patch = new Patch();
  patch.headers = new Map();
  for (let i = 0; i < 200; i++) {
    patch.headers.set(
      `x-${i}`,
      i % 3 === 0 ? [] : i % 3 === 1 ? [b(`v${i}`)] : [b("a"), b("\xff")],
    );
  }
  patch.headers.set("connection", [b("keep-alive")]);
  patch.headers.set("X-Upper", [b("as sent")]);
  const out = new ByteWriter();
  patch.encode(out);
  const bytes = out.take().slice();
  const lazy = Patch.decode(bytes);
  const read = Patch.decode(bytes);
  read.headers;
  equal(lazy.lazyLists !== null && read.lazyLists === null, true);
  const frame = (p: Patch) =>
    new FrameEncoder().respCall(3, 200, responseHeaders(p, req), null).slice();
  deepEqual(frame(lazy), frame(read));
  deepEqual(
    all(responseHeaders(lazy, req)).map(([n, v]) => [text(n), text(v)]),
    all(responseHeaders(read, req)).map(([n, v]) => [text(n), text(v)]),
  );
});
