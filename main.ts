/**
 * The apisix-deno-plugin-runner program. `run` is what APISIX starts; see `--help` for the
 * other subcommands. The hidden `sandbox` role is how the runner starts its sandbox processes
 * (the same program, so that it also works from a `deno compile` binary).
 *
 * @module
 */
if (import.meta.main) {
  if (Deno.args[0] === "sandbox") {
    const { sandboxMain } = await import("./sandbox/process_main.ts");
    await sandboxMain(Deno.args[1] ?? "");
  } else {
    const { main } = await import("./runner/ops/cli.ts");
    // Deno.exit, not a normal return: returning would close the listener, and Deno removes a
    // Unix socket's path when its listener closes, even when a newer runner owns the path now.
    Deno.exit(await main(Deno.args));
  }
}
