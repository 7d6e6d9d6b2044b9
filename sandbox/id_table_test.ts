import { deepEqual, equal, throws } from "node:assert/strict";
import fc from "fast-check";
import { IdTable, MAX_TABLE_ID } from "./id_table.ts";

type Op =
  | { kind: "set"; id: number; value: number }
  | { kind: "delete"; id: number }
  | { kind: "get"; id: number };

// Ids from a small range collide in the probe runs and get reused; a few come from the edges.
const id = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 1, max: 300 }) },
  { weight: 1, arbitrary: fc.constantFrom(1, 64, 128, MAX_TABLE_ID, MAX_TABLE_ID - 63) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: MAX_TABLE_ID }) },
);
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant("set" as const), id, value: fc.integer() }),
  fc.record({ kind: fc.constant("delete" as const), id }),
  fc.record({ kind: fc.constant("get" as const), id }),
);

Deno.test("IdTable behaves like an insertion-ordered Map over any sequence of changes", () => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 600 }), (ops) => {
      const table = new IdTable<{ value: number }>();
      const model = new Map<number, { value: number }>();
      for (const step of ops) {
        if (step.kind === "set") {
          const held = model.get(step.id);
          if (held) held.value = step.value;
          const item = held ?? { value: step.value };
          model.set(step.id, item);
          table.set(step.id, item);
        } else if (step.kind === "delete") {
          equal(table.delete(step.id), model.delete(step.id));
        } else {
          equal(table.get(step.id), model.get(step.id));
          equal(table.has(step.id), model.has(step.id));
        }
        equal(table.size, model.size);
      }
      deepEqual(table.list(), [...model.values()]);
      equal(table.oldest(), model.values().next().value);
      for (const key of model.keys()) equal(table.get(key), model.get(key));
    }),
    { numRuns: 300 },
  );
});

Deno.test("IdTable keeps thousands of ids through growth and removal in any order", () => {
  const table = new IdTable<number>();
  const ids = Array.from({ length: 5_000 }, (_, i) => (i * 7919) % MAX_TABLE_ID + 1);
  for (const id of ids) table.set(id, id * 2);
  equal(table.size, ids.length);
  for (const id of ids) equal(table.get(id), id * 2);
  // Remove every other one, then check the rest are still found behind the holes.
  for (let i = 0; i < ids.length; i += 2) equal(table.delete(ids[i]!), true);
  for (let i = 0; i < ids.length; i++) equal(table.get(ids[i]!), i % 2 ? ids[i]! * 2 : undefined);
  deepEqual(table.list(), ids.filter((_, i) => i % 2).map((id) => id * 2));
});

Deno.test("IdTable refuses ids outside 1 to MAX_TABLE_ID and finds nothing for them", () => {
  const table = new IdTable<string>();
  for (const bad of [0, -1, 1.5, MAX_TABLE_ID + 1, 0xffff_ffff, NaN]) {
    throws(() => table.set(bad, "x"), RangeError);
    equal(table.get(bad), undefined);
    equal(table.has(bad), false);
    equal(table.delete(bad), false);
  }
  equal(table.size, 0);
  equal(table.oldest(), undefined);
});
