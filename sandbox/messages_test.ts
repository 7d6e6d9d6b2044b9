import { deepEqual, throws } from "node:assert/strict";
import { BatchWriter, Kind, readMessages } from "./messages.ts";

Deno.test("a message that throws half-way is dropped; the batch stays well formed", () => {
  const out = new BatchWriter(16);
  out.begin(Kind.Log).u8(1).rawUtf8("kept");
  out.end();
  const w = out.begin(Kind.Result).u32(7);
  throws(() => {
    w.u8(8);
    throw new Error("a getter threw while the patch was written");
  });
  out.abort();
  out.abort(); // nothing open: nothing happens
  out.begin(Kind.Failed).u32(7).u8(0).rawUtf8("its error");
  out.end();
  const kinds: number[] = [];
  readMessages(out.take(), (kind) => kinds.push(kind));
  deepEqual(kinds, [Kind.Log, Kind.Failed]);
});
