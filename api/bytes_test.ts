import { deepEqual, equal, throws } from "node:assert/strict";
import {
  ByteFormatError,
  ByteReader,
  ByteWriter,
  decodeLatin1,
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
