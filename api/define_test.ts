import { deepEqual, equal, throws } from "node:assert/strict";
import { assertPlugin, defaultParseConf, definePlugin } from "./define.ts";

Deno.test("definePlugin returns the plugin itself", () => {
  const plugin = { name: "ok", requestFilter() {} };
  equal(definePlugin(plugin), plugin);
  equal(definePlugin({ name: "resp.only_1", responseFilter() {} }).name, "resp.only_1");
});

Deno.test("definePlugin says what is wrong with a plugin's shape", () => {
  const bad: Array<[unknown, RegExp]> = [
    [null, /must be an object/],
    ["say", /must be an object/],
    [{ requestFilter() {} }, /needs a name of 1-128 .* got undefined/],
    [{ name: "", requestFilter() {} }, /got ""/],
    [{ name: "has space", requestFilter() {} }, /got "has space"/],
    [{ name: "x".repeat(129), requestFilter() {} }, /needs a name/],
    [
      { name: "p", parseConf: "json", requestFilter() {} },
      /Plugin p: parseConf must be a function/,
    ],
    [{ name: "p", requestFilter: 1 }, /Plugin p: requestFilter must be a function/],
    [{ name: "p" }, /Plugin p needs a requestFilter or a responseFilter/],
  ];
  for (const [value, message] of bad) {
    throws(() => assertPlugin(value), message);
    throws(() => definePlugin(value as never), TypeError);
  }
  assertPlugin({ name: "x".repeat(128), responseFilter() {} });
});

Deno.test("defaultParseConf parses JSON and reads an empty conf as null", () => {
  deepEqual(defaultParseConf('{"a":[1]}'), { a: [1] });
  equal(defaultParseConf(""), null);
  equal(defaultParseConf(" \n"), null);
  throws(() => defaultParseConf("{"), SyntaxError);
});
