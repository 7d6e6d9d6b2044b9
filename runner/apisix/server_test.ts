import { equal, match, ok, throws } from "node:assert/strict";
import { parseConfig } from "../config/config.ts";
import {
  EnvironmentError,
  parseConfExpireTime,
  parseListenAddress,
  RunnerServer,
} from "./server.ts";

function environmentError(pattern: RegExp) {
  return (error: Error) => {
    ok(error instanceof EnvironmentError, String(error));
    match(error.message, pattern);
    return true;
  };
}

Deno.test("parseListenAddress: strips unix: from an absolute path", () => {
  equal(parseListenAddress("unix:/tmp/runner.sock"), "/tmp/runner.sock");
  equal(
    parseListenAddress("unix:/usr/local/apisix/conf/apisix-1.sock"),
    "/usr/local/apisix/conf/apisix-1.sock",
  );
});

Deno.test("parseListenAddress: missing, prefix-less or relative addresses name the variable", () => {
  throws(
    () => parseListenAddress(undefined),
    environmentError(/^APISIX_LISTEN_ADDRESS is not set/),
  );
  throws(() => parseListenAddress(""), environmentError(/^APISIX_LISTEN_ADDRESS is not set/));
  throws(
    () => parseListenAddress("/tmp/runner.sock"),
    environmentError(/^APISIX_LISTEN_ADDRESS="\/tmp\/runner.sock" lacks the "unix:" prefix/),
  );
  throws(
    () => parseListenAddress("tcp://127.0.0.1:1"),
    environmentError(/APISIX_LISTEN_ADDRESS=.* lacks the "unix:" prefix/),
  );
  throws(
    () => parseListenAddress("unix:conf/runner.sock"),
    environmentError(/APISIX_LISTEN_ADDRESS=.*absolute/),
  );
  throws(() => parseListenAddress("unix:"), environmentError(/APISIX_LISTEN_ADDRESS/));
});

Deno.test("parseConfExpireTime: unset or blank is 3600; a positive number is taken", () => {
  equal(parseConfExpireTime(undefined), 3600);
  equal(parseConfExpireTime(""), 3600);
  equal(parseConfExpireTime("  "), 3600);
  equal(parseConfExpireTime("3600"), 3600);
  equal(parseConfExpireTime("2"), 2);
  equal(parseConfExpireTime("0.5"), 0.5);
});

Deno.test("parseConfExpireTime: anything else is an error naming the variable, never a 0 TTL", () => {
  for (const value of ["abc", "0", "-1", "Infinity", "NaN", "1h", "0x"]) {
    throws(
      () => parseConfExpireTime(value),
      environmentError(/^APISIX_CONF_EXPIRE_TIME=".*": expected a positive number of seconds/),
      value,
    );
  }
});

function server(path: string): RunnerServer {
  return new RunnerServer(parseConfig({ bundled: false }, "test.json"), {
    path,
    confExpireSeconds: 3600,
  });
}

Deno.test("RunnerServer.listen: parent folder made, stale file replaced, mode 0766", async () => {
  const dir = await Deno.makeTempDir({ prefix: "a6-server-" });
  try {
    const path = `${dir}/a/b/r.sock`;
    const first = server(path);
    first.listen();
    const info = Deno.statSync(path);
    ok(info.isSocket);
    equal(info.mode! & 0o777, 0o766);
    await first.shutdown(0);
    equal(exists(path), false, "its own socket is removed on shutdown");

    Deno.writeTextFileSync(path, "stale");
    const second = server(path);
    second.listen();
    ok(Deno.statSync(path).isSocket);
    await second.shutdown(0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("RunnerServer.listen: a directory at the socket path is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "a6-server-" });
  try {
    Deno.mkdirSync(`${dir}/r.sock`);
    const s = server(`${dir}/r.sock`);
    throws(() => s.listen(), environmentError(/is a directory/));
    await s.shutdown(0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("RunnerServer.shutdown: a path another runner took over is left in place", async () => {
  const dir = await Deno.makeTempDir({ prefix: "a6-server-" });
  const path = `${dir}/r.sock`;
  const old = server(path);
  let successor: Deno.UnixListener | null = null;
  try {
    old.listen();
    Deno.removeSync(path);
    successor = Deno.listen({ transport: "unix", path });
    const inode = Deno.statSync(path).ino;
    await old.shutdown(0);
    equal(Deno.statSync(path).ino, inode);
  } finally {
    successor?.close();
    await Deno.remove(dir, { recursive: true });
  }
});

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
