/**
 * The example package `examples/jwt_auth` as an operator uses it: copied out of the
 * repository, installed into an empty DENO_DIR from the npm registry (jose), its unit tests run
 * with the configuration `install` wrote, then served by the real runner and sandbox: a valid
 * HS256 token goes upstream with its claims in headers, a bad one gets 401, and an ES256 token
 * verifies against a JWKS file the operator grants `read` on.
 */
import { equal, match } from "node:assert/strict";
import { ApisixConn, type Reply } from "../support/apisix.ts";
import { ROOT, startRunner } from "../support/runner.ts";
import { runnerCommand, writeConfig } from "./support.ts";

const EXAMPLE = `${ROOT}/examples/jwt_auth`;
const SECRET = "the example's HS256 secret, long enough";

// Tokens are signed with WebCrypto here: the runner's own imports do not include jose.
const base64url = (data: Uint8Array | string) =>
  btoa(
    typeof data === "string" ? data : Array.from(data, (b) => String.fromCharCode(b)).join(""),
  ).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");

async function sign(
  header: Record<string, string>,
  claims: Record<string, unknown>,
  key: CryptoKey,
): Promise<string> {
  const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  const algorithm = header.alg === "HS256" ? { name: "HMAC" } : { name: "ECDSA", hash: "SHA-256" };
  const signature = await crypto.subtle.sign(algorithm, key, new TextEncoder().encode(input));
  return `${input}.${base64url(new Uint8Array(signature))}`;
}

async function callWith(socket: string, conf: unknown, token: string): Promise<Reply> {
  const conn = await ApisixConn.connect(socket);
  try {
    const handle = await conn.token([["jwt-auth", JSON.stringify(conf)]]);
    return (await conn.reqCall({ token: handle, headers: [["authorization", `Bearer ${token}`]] }))
      .reply;
  } finally {
    conn.close();
  }
}

Deno.test({
  name: "jwt_auth example: install into an empty DENO_DIR, unit tests, and the real runner",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "a6-jwt-" });
    try {
      const pkg = `${dir}/plugins/jwt-auth`;
      await Deno.mkdir(pkg, { recursive: true });
      for (const file of ["deno.json", "deno.lock", "mod.ts", "mod_test.ts"]) {
        await Deno.copyFile(`${EXAMPLE}/${file}`, `${pkg}/${file}`);
      }
      const ec = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
        "sign",
        "verify",
      ]);
      const publicJwk = await crypto.subtle.exportKey("jwk", ec.publicKey);
      const jwks = `${dir}/jwks.json`;
      await Deno.writeTextFile(
        jwks,
        JSON.stringify({ keys: [{ ...publicJwk, kid: "k1", alg: "ES256" }] }),
      );
      const config = await writeConfig(dir, {
        "jwt-auth": { module: "./plugins/jwt-auth/mod.ts", permissions: { read: [jwks] } },
      });
      const env = { DENO_DIR: await Deno.makeTempDir({ prefix: "a6-deno-dir-" }) };

      const installed = await runnerCommand(
        "install",
        ["install", "--frozen", "--config", config],
        env,
      );
      equal(installed.code, 0, installed.output);
      console.log(`install --frozen into an empty DENO_DIR: ${Math.round(installed.ms)} ms`);

      // The package's own unit tests, with the configuration install wrote (no network).
      const unit = await new Deno.Command(Deno.execPath(), {
        args: [
          "test",
          "--no-prompt",
          "--cached-only",
          `--config=${pkg}/.apisix-runner/deno.json`,
          "--allow-read",
          "--allow-write",
          `${pkg}/mod_test.ts`,
        ],
        env: { ...env, NO_COLOR: "1" },
      }).output();
      const unitOutput = new TextDecoder().decode(unit.stdout) +
        new TextDecoder().decode(unit.stderr);
      equal(unit.code, 0, unitOutput);
      match(unitOutput, /4 passed/);

      const runner = await startRunner({ args: ["--config", config], env });
      try {
        const hsConf = { secret: SECRET, claims_to_headers: { sub: "x-user-id" } };
        const exp = Math.floor(Date.now() / 1000) + 300;
        const hmac = await crypto.subtle.importKey(
          "raw",
          new TextEncoder().encode(SECRET),
          { name: "HMAC", hash: "SHA-256" },
          false,
          ["sign"],
        );
        const good = await sign({ alg: "HS256", typ: "JWT" }, { sub: "alice", exp }, hmac);
        const started = performance.now();
        const passed = await callWith(runner.socket, hsConf, good);
        console.log(
          `first call (sandbox start with jose): ${Math.round(performance.now() - started)} ms`,
        );
        if (passed.rpc !== 2 || passed.action !== "rewrite") {
          throw new Error(JSON.stringify(passed));
        }
        equal(passed.headers.find(([name]) => name === "x-user-id")?.[1], "alice");

        const denied = await callWith(runner.socket, hsConf, good.slice(0, -2) + "xx");
        if (denied.rpc !== 2 || denied.action !== "stop") throw new Error(JSON.stringify(denied));
        equal(denied.status, 401);
        match(
          denied.headers.find(([name]) => name === "www-authenticate")?.[1] ?? "",
          /^Bearer error="invalid_token"/,
        );

        const esConf = { jwks_file: jwks, claims_to_headers: { sub: "x-user-id" } };
        const es = await sign({ alg: "ES256", kid: "k1" }, { sub: "bob", exp }, ec.privateKey);
        const esPassed = await callWith(runner.socket, esConf, es);
        if (esPassed.rpc !== 2 || esPassed.action !== "rewrite") {
          throw new Error(JSON.stringify(esPassed));
        }
        equal(esPassed.headers.find(([name]) => name === "x-user-id")?.[1], "bob");
      } finally {
        await runner.stop();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
