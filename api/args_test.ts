import { deepEqual, equal } from "node:assert/strict";
import { ArgStore } from "./args.ts";

Deno.test("ArgStore keeps repeated and value-less args apart", () => {
  const args = new ArgStore([["xx", "y"], ["xx", "z"], ["y", ""], ["z", null]]);
  equal(args.get("xx"), "y");
  deepEqual(args.getAll("xx"), ["y", "z"]);
  equal(args.get("y"), "");
  equal(args.get("z"), "");
  equal(args.get("absent"), null);
  deepEqual(args.raw(), [["xx", "y"], ["xx", "z"], ["y", ""], ["z", null]]);
  equal(args.has("z"), true);
  equal(args.has("xx", "z"), true);
  equal(args.has("xx", "w"), false);
  equal(args.size, 4);
});

Deno.test("ArgStore iterates and serialises like URLSearchParams, keeping flags bare", () => {
  const pairs: Array<[string, string]> = [["q", "a b&c"], ["q", "é"], ["n", "1"]];
  const ours = new ArgStore(pairs);
  const web = new URLSearchParams(pairs);
  deepEqual([...ours], [...web]);
  deepEqual([...ours.keys()], [...web.keys()]);
  deepEqual([...ours.values()], [...web.values()]);
  equal(ours.toString(), web.toString());
  equal(new ArgStore([["flag", null], ["e", ""]]).toString(), "flag&e=");
  const seen: string[] = [];
  ours.forEach((value, name) => seen.push(`${name}:${value}`));
  deepEqual(seen, ["q:a b&c", "q:é", "n:1"]);
});

Deno.test("ArgStore tracks changed names; reading is not a change", () => {
  const args = new ArgStore([["a", "1"], ["b", "2"], ["b", "3"], ["c", null]]);
  args.get("a");
  args.getAll("b");
  args.delete("absent");
  args.delete("b", "no such value");
  equal(args.changed, null);
  args.set("a", "x");
  args.append("n", "1");
  args.delete("b", "2");
  args.delete("c");
  deepEqual([...args.changed!].sort(), ["a", "b", "c", "n"]);
  deepEqual(args.raw(), [["a", "x"], ["b", "3"], ["n", "1"]]);
  deepEqual(args.valuesOf("c"), []);
});

Deno.test("ArgStore.restore replaces values without counting as a change", () => {
  const args = new ArgStore([["a", "1"]]);
  args.restore("a", ["2", null]);
  args.restore("gone", []);
  equal(args.changed, null);
  deepEqual(args.raw(), [["a", "2"], ["a", null]]);
});

Deno.test("ArgStore shows its entries when inspected", () => {
  equal(Deno.inspect(new ArgStore([["a", "1"], ["f", null]])), 'Args { a: [ "1" ], f: [ null ] }');
});
