/**
 * What the package tests share: a registry stand-in on 127.0.0.1 serving npm tarballs the
 * tests build, package directories written on the fly, and the `install` command run the way
 * an operator runs it (the `deno task install` flags).
 *
 * @module
 */
import { ROOT } from "../support/runner.ts";

/** One package version the stand-in serves: its files under `package/`. */
export interface StandInVersion {
  name: string;
  version: string;
  files: Record<string, string>;
  /** Its dependencies, as package.json names them. */
  dependencies?: Record<string, string>;
}

/** A running registry stand-in. */
export interface StandIn {
  /** Its base URL, with a trailing slash. */
  url: string;
  /** Package names asked for, in order. */
  asked: string[];
  close(): Promise<void>;
}

async function tarball(version: StandInVersion): Promise<Uint8Array> {
  const dir = await Deno.makeTempDir({ prefix: "a6-tgz-" });
  try {
    await Deno.mkdir(`${dir}/package`);
    const manifest = {
      name: version.name,
      version: version.version,
      type: "module",
      main: "index.js",
      dependencies: version.dependencies ?? {},
    };
    await Deno.writeTextFile(`${dir}/package/package.json`, JSON.stringify(manifest));
    for (const [path, text] of Object.entries(version.files)) {
      await Deno.writeTextFile(`${dir}/package/${path}`, text);
    }
    const { code, stderr } = await new Deno.Command("tar", {
      args: ["-czf", `${dir}/out.tgz`, "-C", dir, "package"],
    }).output();
    if (code !== 0) throw new Error(new TextDecoder().decode(stderr));
    return await Deno.readFile(`${dir}/out.tgz`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function base64(data: Uint8Array): string {
  let text = "";
  for (const byte of data) text += String.fromCharCode(byte);
  return btoa(text);
}

async function digest(algorithm: string, data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest(algorithm, data as Uint8Array<ArrayBuffer>));
}

/** Serves `versions` as an npm registry does (packuments and tarballs) on 127.0.0.1. */
export async function startRegistry(versions: readonly StandInVersion[]): Promise<StandIn> {
  const tarballs = new Map<string, Uint8Array>();
  const packuments = new Map<string, Record<string, unknown>>();
  const asked: string[] = [];
  const abort = new AbortController();
  const port = await new Promise<number>((resolve) => {
    Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      signal: abort.signal,
      onListen: ({ port }) => resolve(port),
    }, (request) => {
      const path = decodeURIComponent(new URL(request.url).pathname.slice(1));
      const tgz = tarballs.get(path);
      if (tgz) return new Response(tgz as Uint8Array<ArrayBuffer>);
      asked.push(path);
      const packument = packuments.get(path);
      return packument ? Response.json(packument) : new Response("not found", { status: 404 });
    });
  });
  const url = `http://127.0.0.1:${port}/`;
  for (const version of versions) {
    const data = await tarball(version);
    const file = `${version.name}/-/${version.name.split("/").pop()}-${version.version}.tgz`;
    tarballs.set(file, data);
    const shasum = Array.from(await digest("SHA-1", data), (b) => b.toString(16).padStart(2, "0"))
      .join("");
    const packument = packuments.get(version.name) ??
      { name: version.name, "dist-tags": {}, versions: {} };
    (packument["dist-tags"] as Record<string, string>).latest = version.version;
    (packument.versions as Record<string, unknown>)[version.version] = {
      name: version.name,
      version: version.version,
      main: "index.js",
      dependencies: version.dependencies ?? {},
      dist: {
        tarball: `${url}${file}`,
        shasum,
        integrity: `sha512-${base64(await digest("SHA-512", data))}`,
      },
    };
    packuments.set(version.name, packument);
  }
  return {
    url,
    asked,
    close: () => {
      abort.abort();
      return Promise.resolve();
    },
  };
}

/** Writes a package: its deno.json naming `imports`, and its files. */
export async function writePackage(
  dir: string,
  imports: Record<string, string>,
  files: Record<string, string>,
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/deno.json`, JSON.stringify({ imports }, null, 2) + "\n");
  for (const [path, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${dir}/${path}`, text);
  }
}

/** What a runner subcommand printed, and its exit code. */
export interface Ran {
  code: number;
  output: string;
  ms: number;
}

/** Flags of a `deno task NAME` that runs main.ts, read from deno.json. */
async function taskFlags(task: string): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
  const words = (config.tasks[task] as string).split(/\s+/);
  return words.slice(words.indexOf("run") + 1, words.indexOf("main.ts"));
}

/** Runs `main.ts <command> ...args` with `deno task <task>`'s flags and `env` added. */
export async function runnerCommand(
  task: "install" | "start",
  args: string[],
  env: Record<string, string>,
): Promise<Ran> {
  const started = performance.now();
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [...await taskFlags(task), `${ROOT}/main.ts`, ...args],
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
  }).output();
  const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  return { code, output, ms: performance.now() - started };
}

/** Writes a runner configuration into `dir` and returns its path. */
export async function writeConfig(dir: string, plugins: Record<string, unknown>): Promise<string> {
  const file = `${dir}/runner.json`;
  await Deno.writeTextFile(file, JSON.stringify({ bundled: false, plugins }, null, 2));
  return file;
}

/** A plugin module named `name` that answers 200 with the JS `expression` as its body. */
export function answeringPlugin(name: string, imports: string, expression: string): string {
  return `${imports}
import { definePlugin } from "@apisix/deno-plugin-runner";
export default definePlugin({
  name: ${JSON.stringify(name)},
  requestFilter(_conf, _req, res) {
    res.status = 200;
    res.body = String(${expression});
  },
});
`;
}
