import { deepEqual, equal, throws } from "node:assert/strict";
import {
  ByteFormatError,
  ByteReader,
  ByteWriter,
  decodeLatin1,
  decodeUtf8,
  encodeLatin1,
  isByteString,
} from "./bytes.ts";

Deno.test("ByteWriter keeps every field when it grows in the middle of writes", () => {
  const out = new ByteWriter(4);
  for (let i = 0; i < 500; i++) {
    out.u8(i & 0xff).u16(i).u32(i * 65537).bytes(new Uint8Array(i % 13).fill(i & 0xff));
    out.utf8(`é${i}`).latin1("ÿ");
  }
  const reader = new ByteReader(out.view());
  for (let i = 0; i < 500; i++) {
    equal(reader.u8(), i & 0xff);
    equal(reader.u16(), i);
    equal(reader.u32(), (i * 65537) >>> 0);
    deepEqual(reader.bytesView(), new Uint8Array(i % 13).fill(i & 0xff));
    equal(new TextDecoder().decode(reader.bytesView()), `é${i}`);
    deepEqual(reader.bytesView(), Uint8Array.of(0xff));
  }
  equal(reader.remaining, 0);
});

Deno.test("ByteReader refuses to read past the end", () => {
  const reader = new ByteReader(Uint8Array.of(5, 0, 0, 0, 1));
  throws(() => reader.bytesView(), ByteFormatError);
});

Deno.test("Latin-1 round-trips every byte value", () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const text = decodeLatin1(all);
  equal(text.length, 256);
  equal(isByteString(text), true);
  deepEqual(encodeLatin1(text), all);
  equal(isByteString("€"), false);
});

Deno.test("ByteWriter writes text as UTF-8, short or long, ASCII or not, after any prefix", () => {
  const texts = ["", "remote_addr", "é", "x".repeat(64) + "é", "a".repeat(65), "日本語", "a😀b"];
  const out = new ByteWriter(2);
  for (const text of texts) out.utf8(text).utf8u16(text).rawUtf8(text).u8(0xee);
  const reader = new ByteReader(out.view());
  const utf8 = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  for (const text of texts) {
    const bytes = new TextEncoder().encode(text);
    equal(utf8(reader.bytesView()), text);
    equal(reader.u16(), bytes.length);
    equal(utf8(reader.raw(bytes.length)), text);
    equal(utf8(reader.raw(bytes.length)), text);
    equal(reader.u8(), 0xee);
  }
  equal(reader.remaining, 0);
});

Deno.test("ByteWriter.utf8u16 refuses text longer than a u16 length and writes nothing", () => {
  const out = new ByteWriter();
  out.u8(1);
  throws(() => out.utf8u16("é".repeat(40_000)), RangeError);
  equal(out.length, 1);
  out.utf8u16("ok");
  deepEqual(out.view(), Uint8Array.of(1, 2, 0, 0x6f, 0x6b));
});

Deno.test("decodeUtf8 decodes short and long, ASCII and not, and replaces what is not UTF-8", () => {
  for (const text of ["", "remote_addr", "x".repeat(64), "x".repeat(65), "é", "a😀", "日本"]) {
    equal(decodeUtf8(new TextEncoder().encode(text)), text);
  }
  equal(decodeUtf8(Uint8Array.of(0x61, 0xff, 0x62)), "a\ufffdb");
  equal(
    decodeUtf8(Uint8Array.of(0xef, 0xbb, 0xbf, 0x61)),
    "a",
    "a BOM is dropped, as TextDecoder does",
  );
});
