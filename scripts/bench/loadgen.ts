/**
 * The shared load generator (`../shared/tools/loadgen`): building it and running it once.
 *
 * @module
 */
import { join } from "node:path";

/** The JSON line a loadgen run ends with (the fields the benchmark uses). */
export interface LoadResult {
  rps: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  errors: number;
  requests: number;
}

/** What one loadgen run sends. */
export interface LoadSpec {
  socket: string;
  conns: number;
  seconds: number;
  mode: "req" | "resp";
  confs: readonly string[];
  bodySize: number;
}

/** The loadgen arguments for a spec (no warm-up inside the run: the caller warms up first). */
export function loadArgs(spec: LoadSpec): string[] {
  const args = [
    "--socket",
    spec.socket,
    "--conns",
    String(spec.conns),
    "--duration",
    String(spec.seconds),
    "--warmup",
    "0",
    "--mode",
    spec.mode,
    "--quiet",
  ];
  for (const conf of spec.confs) args.push("--conf", conf);
  if (spec.bodySize) args.push("--body-size", String(spec.bodySize));
  return args;
}

/** Runs the loadgen in `dir` once. Errors in the replies are counted, not thrown. */
export async function runLoad(dir: string, spec: LoadSpec): Promise<LoadResult> {
  const out = await new Deno.Command(join(dir, "loadgen"), {
    args: loadArgs(spec),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const line = new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line) as LoadResult;
  } catch {
    throw new Error(
      `loadgen gave no result (status ${out.code}): ${new TextDecoder().decode(out.stderr)}`,
    );
  }
}

async function make(dir: string): Promise<void> {
  const out = await new Deno.Command("make", {
    args: ["-C", dir],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!out.success) {
    throw new Error(
      `building the load generator failed (it needs g++, flatbuffers-compiler and ` +
        `libflatbuffers-dev):\n${new TextDecoder().decode(out.stderr)}`,
    );
  }
}

/**
 * A directory with built `loadgen` and `ceiling` executables: `given` if set, else
 * `<root>/.bench/loadgen`, built there from `<root>/../shared/tools/loadgen` the first time.
 */
export async function loadgenDir(
  root: string,
  given: string | undefined,
  say: (message: string) => void,
): Promise<string> {
  if (given) return given;
  const dir = join(root, ".bench", "loadgen");
  try {
    await Deno.stat(join(dir, "loadgen"));
    await Deno.stat(join(dir, "ceiling"));
    return dir;
  } catch { /* build it */ }
  const source = join(root, "..", "shared", "tools", "loadgen");
  await Deno.mkdir(dir, { recursive: true });
  for await (const entry of Deno.readDir(source)) {
    if (!entry.isFile) continue;
    await Deno.copyFile(join(source, entry.name), join(dir, entry.name));
    await Deno.chmod(join(dir, entry.name), 0o644); // the source may be read-only; make writes gen/
  }
  say(`building the load generator in ${dir}`);
  await make(dir);
  return dir;
}
