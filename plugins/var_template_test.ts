import { deepEqual, equal, throws } from "node:assert/strict";
import { fetchVars, VarTemplate } from "./var_template.ts";

const values = new Map<string, string | null>([
  ["uri", "/a"],
  ["remote_addr", "10.0.0.1"],
  ["post_arg.name", "n"],
  ["unset", null],
]);

Deno.test("VarTemplate renders $name, ${name} and ${name ?? fallback}", () => {
  const cases: Array<[string, string]> = [
    ["plain", "plain"],
    ["$uri", "/a"],
    ["/v2$uri/x", "/v2/a/x"],
    ["${remote_addr}:80", "10.0.0.1:80"],
    ["${ remote_addr }", "10.0.0.1"],
    ["${unset ?? none}", "none"],
    ["${unset??}", ""],
    ["[$unset][$missing]", "[][]"],
    ["$post_arg.name", "n"],
    ["$remote_addr.", "10.0.0.1."],
    ["\\$uri costs \\$5 or $, $9", "$uri costs $5 or $, "],
    ["$$uri", "$/a"],
  ];
  for (const [text, expected] of cases) {
    equal(VarTemplate.parse("f", text).render(values), expected, text);
  }
});

Deno.test("VarTemplate lists each referenced variable once", () => {
  const template = VarTemplate.parse("f", "$uri-${uri}-${route_id ?? x}-\\$skipped");
  deepEqual(template.vars, ["uri", "route_id"]);
  equal(template.constant, false);
  equal(VarTemplate.parse("f", "no vars $ here").constant, true);
});

Deno.test("VarTemplate names the field of a malformed template", () => {
  throws(() => VarTemplate.parse("headers.set.x", "${uri"), /headers.set.x: unterminated "\$\{"/);
  throws(() => VarTemplate.parse("path", "${a b}"), /path: expected a variable name inside/);
  throws(() => VarTemplate.parse("path", "${}"), /path: expected a variable name inside/);
});

Deno.test("fetchVars reads each name once, in parallel", async () => {
  const asked: string[] = [];
  const result = await fetchVars(["a", "b", "a"], (name) => {
    asked.push(name);
    return Promise.resolve(name === "b" ? null : name.toUpperCase());
  });
  deepEqual(asked, ["a", "b"]);
  deepEqual(result, new Map([["a", "A"], ["b", null]]));
});
