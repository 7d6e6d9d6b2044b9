/**
 * Attack: a worker that writes patches by hand. It replaces the runtime's `Patch.encode` for one
 * call (chosen by the `x-case` header) with bytes the worker's own encoder never writes: lists
 * over the limits, lengths past the end, records twice, CR/LF in a header, a reply over 16 MiB,
 * and the largest patch the runner accepts.
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { patchModule, type Writer } from "./sandbox_modules.ts";

const { Patch } = patchModule;
const encode = Patch.prototype.encode;
const enc = new TextEncoder();

const HEADER = 4;
const ARG = 5;
const PATH = 3;
const RESPONSE_HEADERS = 7;

function str(out: Writer, text: string | Uint8Array): void {
  out.bytes(typeof text === "string" ? enc.encode(text) : text);
}

/** `n` request headers `h<i>: v`. */
function headers(out: Writer, n: number): void {
  for (let i = 0; i < n; i++) {
    out.u8(HEADER);
    str(out, `h${i}`);
    out.u16(1);
    str(out, "v");
  }
}

const CASES: Record<string, (out: Writer) => void> = {
  // Over the limits: the call fails alone.
  headers: (out) => headers(out, 65_537),
  values: (out) => {
    out.u8(HEADER);
    str(out, "x-many");
    out.u16(0xffff);
    for (let i = 0; i < 0xffff; i++) str(out, "v");
    out.u8(HEADER);
    str(out, "x-more");
    out.u16(2);
    str(out, "a");
    str(out, "b");
  },
  responseCount: (out) => out.u8(RESPONSE_HEADERS).u32(4_000_000_000),
  bytes: (out) => {
    out.u8(HEADER);
    str(out, "x-big");
    out.u16(1);
    str(out, new Uint8Array(17 * 1024 * 1024).fill(0x61));
  },
  // The largest reply accepted: 65,536 entries in each of the three lists.
  worst: (out) => {
    headers(out, 65_536);
    for (let i = 0; i < 65_536; i++) {
      out.u8(ARG);
      str(out, `a${i}`);
      out.u16(1).u8(1);
      str(out, "v");
    }
    out.u8(RESPONSE_HEADERS).u32(65_536);
    for (let i = 0; i < 65_536; i++) {
      str(out, `r${i}`);
      str(out, "v");
    }
  },
  // Malformed: a protocol violation.
  truncated: (out) => {
    out.u8(HEADER);
    str(out, "x-a");
    out.u16(1000);
    str(out, "only one");
  },
  length: (out) => out.u8(PATH).u32(0xffff_fff0).raw(enc.encode("/short")),
  twice: (out) => {
    out.u8(PATH);
    str(out, "/a");
    out.u8(PATH);
    str(out, "/b");
  },
  crlf: (out) => {
    out.u8(HEADER);
    str(out, "x-a");
    out.u16(1);
    str(out, "a\r\nset-cookie: x");
  },
};

export default definePlugin({
  name: "hostile_patch",
  requestFilter(_conf, req, res) {
    const write = CASES[req.headers.get("x-case") ?? ""];
    if (!write) {
      res.body = "alive";
      return;
    }
    Patch.prototype.encode = function (out: Writer) {
      Patch.prototype.encode = encode;
      write(out);
    };
  },
});
