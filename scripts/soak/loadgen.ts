/**
 * The optional closed-loop pressure on `say` from the shared load generator.
 *
 * @module
 */

// ---- loadgen (optional) ------------------------------------------------------------------

/** Where `deno task bench` builds the shared load generator. */
export const LOADGEN = new URL("../../.bench/loadgen/loadgen", import.meta.url).pathname;

/** Runs the load generator on `say` in rounds of up to a minute until `until`, reporting each. */
export async function runLoadgen(
  socket: string,
  conns: number,
  until: number,
  onResult: (result: { requests: number; errors: number }) => void,
): Promise<void> {
  while (performance.now() < until - 5000) {
    const seconds = Math.min(60, Math.floor((until - performance.now()) / 1000) - 3);
    if (seconds < 2) break;
    const out = await new Deno.Command(LOADGEN, {
      args: [
        "--socket",
        socket,
        "--conns",
        String(conns),
        "--duration",
        String(seconds),
        "--warmup",
        "0",
        "--quiet",
        "--conf",
        'say={"body":"hello"}',
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const line = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "{}";
    try {
      const json = JSON.parse(line);
      onResult({ requests: json.requests ?? 0, errors: json.errors ?? 0 });
    } catch {
      onResult({ requests: 0, errors: 1 });
    }
  }
}
