import { deepEqual, equal, rejects } from "node:assert/strict";
import { assertNone, assertRewrite, assertStop, testChain, testPlugin } from "../testing/mod.ts";
import contentDigest, { parseContentDigest } from "./content_digest.ts";
import bodyRewrite from "./request_body_rewrite.ts";

async function digest(algorithm: string, text: string): Promise<string> {
  const bytes = await crypto.subtle.digest(algorithm, new TextEncoder().encode(text));
  return btoa(String.fromCharCode(...new Uint8Array(bytes)));
}

Deno.test("content-digest sends the body's SHA-256 upstream (RFC 9530)", async () => {
  const plugin = await testPlugin(contentDigest, {});
  const outcome = await plugin.request({ method: "POST", body: '{"hello": "world"}' });
  assertRewrite(outcome);
  // RFC 9530 Appendix B.1's example body and digest.
  equal(
    outcome.upstream.headers.get("content-digest"),
    "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
  );
  deepEqual(outcome.asks, [{ kind: "reqBody" }]);
});

Deno.test("content-digest without require replaces a wrong digest and digests an empty body", async () => {
  const plugin = await testPlugin(contentDigest, { require: false });
  const outcome = await plugin.request({
    body: "abc",
    headers: { "content-digest": "sha-256=:AAAA:" },
  });
  assertRewrite(outcome);
  equal(
    outcome.upstream.headers.get("content-digest"),
    `sha-256=:${await digest("SHA-256", "abc")}:`,
  );
  const empty = await plugin.request();
  assertRewrite(empty);
  equal(empty.upstream.headers.get("content-digest"), `sha-256=:${await digest("SHA-256", "")}:`);
});

Deno.test("content-digest with require passes matching sha-256 and sha-512 digests", async () => {
  const plugin = await testPlugin(contentDigest, { require: true });
  const sha256 = `sha-256=:${await digest("SHA-256", "abc")}:`;
  // Already exactly what goes upstream: nothing to change.
  assertNone(await plugin.request({ body: "abc", headers: { "Content-Digest": sha256 } }));
  const both = `sha-512=:${await digest("SHA-512", "abc")}:, ${sha256}`;
  const outcome = await plugin.request({ body: "abc", headers: { "content-digest": both } });
  assertRewrite(outcome);
  equal(outcome.upstream.headers.get("content-digest"), sha256);
  const unknownToo = `unixsum=:AAAA:, ${sha256}`;
  const kept = await plugin.request({ body: "abc", headers: { "content-digest": unknownToo } });
  assertRewrite(kept);
  equal(kept.upstream.headers.get("content-digest"), sha256);
});

Deno.test("content-digest with require answers 400 for a missing, malformed or wrong digest", async () => {
  const plugin = await testPlugin(contentDigest, { require: true });
  const wrong512 = await digest("SHA-512", "abd");
  const cases: Array<[Record<string, string>, string]> = [
    [{}, "Content-Digest is required"],
    [{ "content-digest": "sha-256=abc" }, "Content-Digest is malformed"],
    [{ "content-digest": "md5=:AAAA:" }, "Content-Digest has no sha-256 or sha-512 digest"],
    [
      { "content-digest": `sha-256=:${await digest("SHA-256", "abd")}:` },
      "Content-Digest sha-256 does not match the request body",
    ],
    [
      { "content-digest": `sha-256=:${await digest("SHA-256", "abc")}:, sha-512=:${wrong512}:` },
      "Content-Digest sha-512 does not match the request body",
    ],
  ];
  for (const [headers, reason] of cases) {
    const outcome = await plugin.request({ body: "abc", headers });
    assertStop(outcome);
    equal(outcome.status, 400);
    equal(outcome.text, `${reason}\n`);
    equal(outcome.headers.get("content-type"), "text/plain; charset=utf-8");
  }
});

Deno.test("content-digest digests the body an earlier plugin put in place", async () => {
  const chain = await testChain([[bodyRewrite, { new_body: "abc" }], [contentDigest]]);
  const outcome = await chain.request({ body: "original" });
  assertRewrite(outcome);
  equal(
    outcome.upstream.headers.get("content-digest"),
    `sha-256=:${await digest("SHA-256", "abc")}:`,
  );
  deepEqual(outcome.asks, []);
});

Deno.test("parseContentDigest reads RFC 8941 dictionaries of byte sequences", () => {
  deepEqual(
    parseContentDigest("sha-256=:YQ==:;p=1,  sha-512=:Yg==:"),
    new Map([["sha-256", "YQ=="], ["sha-512", "Yg=="]]),
  );
  equal(parseContentDigest("sha-256=YQ=="), null);
  equal(parseContentDigest("SHA-256=:YQ==:"), null);
});

Deno.test("content-digest rejects bad confs", async () => {
  await rejects(testPlugin(contentDigest, { require: "yes" }), /require: expected true or false/);
  await rejects(testPlugin(contentDigest, { algorithm: "md5" }), /algorithm: unknown field/);
});
