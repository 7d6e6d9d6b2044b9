import { deepEqual, equal, throws } from "node:assert/strict";
import { ByteFormatError, ByteReader, ByteWriter } from "./bytes.ts";
import { checkPrefetch, MAX_PREFETCH_VARS, readPrefetch, writePrefetch } from "./prefetch.ts";

Deno.test("checkPrefetch: nothing declared is null; duplicates are dropped", () => {
  equal(checkPrefetch(undefined), null);
  equal(checkPrefetch(null), null);
  equal(checkPrefetch({}), null);
  equal(checkPrefetch({ vars: [], requestBody: false }), null);
  deepEqual(checkPrefetch({ vars: ["a", "http_x_y", "a"], requestBody: true }), {
    vars: ["a", "http_x_y"],
    requestBody: true,
    responseBody: false,
  });
});

Deno.test("checkPrefetch: each mistake is named", () => {
  throws(() => checkPrefetch("vars"), /must return an object/);
  throws(() => checkPrefetch({ vars: "a" }), /vars must be an array/);
  throws(() => checkPrefetch({ vars: [1] }), /var name must be/);
  throws(() => checkPrefetch({ vars: [""] }), /var name must be/);
  throws(() => checkPrefetch({ vars: ["a\nb"] }), /var name must be/);
  throws(() => checkPrefetch({ vars: ["é"] }), /var name must be/);
  throws(() => checkPrefetch({ vars: ["x".repeat(257)] }), /var name must be/);
  throws(() => checkPrefetch({ requestBody: "yes" }), /must be booleans/);
  throws(() => checkPrefetch({ var: ["a"] }), /unknown key "var"/);
  const many = Array.from({ length: MAX_PREFETCH_VARS + 1 }, (_, i) => `v${i}`);
  throws(() => checkPrefetch({ vars: many }), /at most 32 vars, got 33/);
  equal(checkPrefetch({ vars: many.slice(1) })!.vars.length, MAX_PREFETCH_VARS);
});

Deno.test("writePrefetch and readPrefetch round-trip, and read refuses what is out of bounds", () => {
  const out = new ByteWriter();
  const list = { vars: ["remote_addr", "x".repeat(256)], requestBody: false, responseBody: true };
  writePrefetch(out, list);
  writePrefetch(out, null);
  const reader = new ByteReader(out.take());
  deepEqual(readPrefetch(reader), list);
  equal(readPrefetch(reader), null);
  equal(reader.remaining, 0);
  for (
    const bytes of [
      [4, 0], // unknown flag
      [0, MAX_PREFETCH_VARS + 1], // too many names
      [0, 1, 0, 0], // an empty name
      [0, 1, 1, 1], // a name longer than 256 bytes
      [0, 1, 5, 0, 0x61], // a name longer than the message
    ]
  ) {
    throws(() => readPrefetch(new ByteReader(new Uint8Array(bytes))), ByteFormatError);
  }
});
