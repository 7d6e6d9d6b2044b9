import { equal, match } from "node:assert/strict";
import { bundledSettings } from "../config/config.ts";
import { type Carrier, type Exit, Supervisor } from "./supervisor.ts";

Deno.test("a sandbox that ends while it is still starting is a failed start, not a crash of the runner", async () => {
  let ended!: (exit: Exit) => void;
  let carrier!: Carrier;
  const supervisor = new Supervisor("plugin:say", [bundledSettings("say")], () => {
    carrier = {
      // Ends (as at a shutdown, or a SIGKILL) before its start has finished.
      async start() {
        ended({ cause: "crash", message: "the sandbox ended during its start" });
        await new Promise((resolve) => setTimeout(resolve, 20));
      },
      send() {},
      kill() {},
      exited: new Promise<Exit>((resolve) => ended = resolve),
      pid: null,
    };
    return carrier;
  });
  // Before the fix, the plugins' ready promises were rejected with nobody listening yet, and
  // the unhandled rejection ended the runner (this test would fail on it).
  await supervisor.ensureStarted();
  match(supervisor.startError ?? "", /sandbox plugin:say failed to start: the sandbox ended/);
  equal(supervisor.running, false);
  supervisor.close();
});
