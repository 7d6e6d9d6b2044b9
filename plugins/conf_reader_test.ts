import { deepEqual, equal, throws } from "node:assert/strict";
import {
  ConfError,
  Fields,
  headerName,
  headerPairs,
  headerValue,
  toByteString,
} from "./conf_reader.ts";

Deno.test("Fields.parse takes a JSON object, and an empty conf as {}", () => {
  equal(Fields.parse("", ["a"]).has("a"), false);
  equal(Fields.parse(' {"a": 1} ', ["a"]).get("a"), 1);
  throws(() => Fields.parse("{", []), /the conf is not valid JSON/);
  throws(() => Fields.parse("null", []), /the conf: expected a JSON object, got null/);
  throws(() => Fields.parse('"x"', []), ConfError);
  throws(() => Fields.parse('{"b": 1}', ["a"]), /b: unknown field \(expected a\)/);
  throws(() => Fields.parse('{"b": 1}', []), /b: unknown field \(expected no fields\)/);
});

Deno.test("Fields reads typed values and names nested fields in errors", () => {
  const fields = Fields.parse(
    JSON.stringify({ s: "x", n: 1.5, i: 3, b: true, o: { deep: [1] }, l: ["a"], z: null }),
    ["s", "n", "i", "b", "o", "l", "z"],
  );
  equal(fields.string("s"), "x");
  equal(fields.number("n", 0, 2), 1.5);
  equal(fields.integer("i", 1, 3), 3);
  equal(fields.integer("missing", 1, 3, 2), 2);
  equal(fields.boolean("b", false), true);
  equal(fields.boolean("z", false), false, "null counts as absent");
  deepEqual(fields.stringList("l"), ["a"]);
  deepEqual(fields.stringList("missing"), []);
  deepEqual(fields.stringOrList("s"), ["x"]);
  equal(fields.optionalString("z"), undefined);
  throws(() => fields.integer("n", 0, 9), /n: expected an integer from 0 to 9, got 1.5/);
  throws(() => fields.number("i", 5, 9), /i: expected a number above 5 and at most 9, got 3/);
  throws(() => fields.string("missing"), /missing: expected a string, got nothing/);
  throws(() => fields.object("o")!.stringList("deep"), /o.deep: expected a list of strings/);
  throws(() => fields.object("o", ["other"]), /o.deep: unknown field \(expected other\)/);
  throws(() => fields.object("s"), /s: expected an object, got "x"/);
});

Deno.test("header helpers check names and turn text into UTF-8 byte strings", () => {
  equal(headerName("h", "X-Token"), "x-token");
  throws(() => headerName("h", "bad name"), /h: expected a header name/);
  equal(headerValue("v", "  padded  "), "padded");
  equal(toByteString("é"), "\u00c3\u00a9");
  equal(toByteString("plain"), "plain");
  throws(() => headerValue("v", "a\nb"), /v: expected a header value without NUL, CR or LF/);
  const pairs = headerPairs(
    Fields.parse('{"headers":{"A":"1","b":["2","3"]}}', ["headers"]).object("headers")!,
  );
  deepEqual(pairs, [["a", "1"], ["b", "2"], ["b", "3"]]);
});
