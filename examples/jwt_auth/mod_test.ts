import { equal, match, rejects } from "node:assert/strict";
import { assertRewrite, assertStop, testPlugin } from "@apisix/deno-plugin-runner/testing";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import jwtAuth from "./mod.ts";

const SECRET = "a secret of the test, long enough for HS256";

function hs256(
  claims: Record<string, unknown>,
  secret = SECRET,
): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(
    new TextEncoder().encode(secret),
  );
}

const bearer = (token: string) => ({
  headers: { authorization: `Bearer ${token}` },
});

Deno.test("jwt-auth passes a valid HS256 token and copies claims into upstream headers", async () => {
  const plugin = await testPlugin(jwtAuth, {
    secret: SECRET,
    claims_to_headers: { sub: "x-user-id", roles: "x-roles" },
  });
  const now = Math.floor(Date.now() / 1000);
  const outcome = await plugin.request(
    bearer(
      await hs256({
        sub: "alice",
        roles: ["admin"],
        exp: now + 60,
        nbf: now - 1,
      }),
    ),
  );
  assertRewrite(outcome);
  equal(outcome.upstream.headers.get("x-user-id"), "alice");
  equal(outcome.upstream.headers.get("x-roles"), '["admin"]');
});

Deno.test("jwt-auth answers 401 with WWW-Authenticate for a missing, bad or expired token", async () => {
  const plugin = await testPlugin(jwtAuth, { secret: SECRET });
  const now = Math.floor(Date.now() / 1000);
  const cases: Array<[string, { headers?: Record<string, string> }, RegExp]> = [
    ["missing", {}, /a Bearer token is required/],
    [
      "wrong secret",
      bearer(await hs256({ sub: "x" }, "another secret entirely")),
      /not valid/,
    ],
    ["expired", bearer(await hs256({ sub: "x", exp: now - 120 })), /expired/],
    [
      "not yet valid",
      bearer(await hs256({ sub: "x", nbf: now + 3600 })),
      /not valid/,
    ],
    ["garbage", bearer("abc.def.ghi"), /not valid/],
  ];
  for (const [what, request, reason] of cases) {
    const outcome = await plugin.request(request);
    assertStop(outcome);
    equal(outcome.status, 401, what);
    match(
      outcome.headers.get("www-authenticate") ?? "",
      /^Bearer error="invalid_token"/,
      what,
    );
    match(outcome.text, reason, what);
  }
});

Deno.test("jwt-auth verifies RS256 and ES256 tokens against a JWKS file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const rsa = await generateKeyPair("RS256");
    const ec = await generateKeyPair("ES256");
    const keys = [
      { ...(await exportJWK(rsa.publicKey)), kid: "rsa", alg: "RS256" },
      { ...(await exportJWK(ec.publicKey)), kid: "ec", alg: "ES256" },
    ];
    await Deno.writeTextFile(`${dir}/jwks.json`, JSON.stringify({ keys }));
    const plugin = await testPlugin(jwtAuth, {
      jwks_file: `${dir}/jwks.json`,
      issuer: "https://issuer.test",
      claims_to_headers: { sub: "x-user-id" },
    });
    for (
      const [kid, alg, key] of [["rsa", "RS256", rsa], [
        "ec",
        "ES256",
        ec,
      ]] as const
    ) {
      const token = await new SignJWT({ sub: kid }).setProtectedHeader({
        alg,
        kid,
      })
        .setIssuer("https://issuer.test").setExpirationTime("1m").sign(
          key.privateKey,
        );
      const outcome = await plugin.request(bearer(token));
      assertRewrite(outcome);
      equal(outcome.upstream.headers.get("x-user-id"), kid);
    }
    const wrongIssuer = await new SignJWT({ sub: "x" }).setProtectedHeader({
      alg: "ES256",
      kid: "ec",
    })
      .setIssuer("https://other.test").sign(ec.privateKey);
    assertStop(await plugin.request(bearer(wrongIssuer)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("jwt-auth rejects confs without exactly one key source", async () => {
  await rejects(testPlugin(jwtAuth, {}), /exactly one of secret/);
  await rejects(
    testPlugin(jwtAuth, { secret: "a", jwks_file: "/x" }),
    /exactly one of secret/,
  );
  await rejects(
    testPlugin(jwtAuth, {
      secret: "a",
      claims_to_headers: { sub: "bad header" },
    }),
    /claims_to_headers.sub/,
  );
});
