import { deepEqual, throws } from "node:assert/strict";
import { parseJsonc, stripJsonc } from "./jsonc.ts";

Deno.test("parseJsonc: comments and trailing commas, strings untouched", () => {
  const text = `{
  // a line comment
  "url": "http://example.com/a//b", /* a block
  comment */ "list": [1, 2, ],
  "quote": "say \\"//\\" and /* not a comment */",
}`;
  deepEqual(parseJsonc(text), {
    url: "http://example.com/a//b",
    list: [1, 2],
    quote: 'say "//" and /* not a comment */',
  });
});

Deno.test("stripJsonc keeps line and column positions for JSON.parse errors", () => {
  const text = '{\n  // note\n  "a": 1,\n  "b": oops\n}';
  const stripped = stripJsonc(text);
  deepEqual(stripped.split("\n").length, text.split("\n").length);
  deepEqual(stripped.indexOf("oops"), text.indexOf("oops"));
  throws(() => parseJsonc(text), SyntaxError);
});

Deno.test("a comma followed by a value is kept", () => {
  deepEqual(parseJsonc("[1, /* x */ 2]"), [1, 2]);
  throws(() => parseJsonc("[1,,]"), SyntaxError);
});
