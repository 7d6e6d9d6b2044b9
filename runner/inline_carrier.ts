/**
 * Runs a plugin's worker inside the runner process (`isolation: "inline"`): the fastest hop,
 * for trusted first-party code only. A worker stuck in a loop cannot be stopped (Deno's
 * `terminate()` does not interrupt it) and a heap exhaustion would end the runner, which is why
 * third-party plugins get their own process.
 *
 * @module
 */
import type { PluginSettings } from "./config.ts";
import type { BatchSink, Carrier, Exit } from "./supervisor.ts";
import type { FailureCause } from "./plugin_host.ts";
import type { WorkerInit } from "../sandbox/plugin_worker.ts";
import { checkGrants, grantRoots } from "./grant_check.ts";
import { workerPermissions } from "./worker_permissions.ts";

const WORKER_URL = new URL("../sandbox/plugin_worker.ts", import.meta.url);

/** A carrier of one inline worker. */
export function inlineCarrier(
  _key: string,
  plugins: readonly PluginSettings[],
  onBatch: BatchSink,
): Carrier {
  const settings = plugins[0]!;
  let worker: Worker | null = null;
  let resolveExit!: (exit: Exit) => void;
  const exited = new Promise<Exit>((resolve) => resolveExit = resolve);
  let ended = false;
  // Also when no worker was made (its start was refused): the supervisor waits for `exited`.
  const end = (cause: FailureCause, message: string) => {
    if (ended) return;
    ended = true;
    worker?.terminate();
    worker = null;
    resolveExit({ cause, message });
  };
  return {
    pid: null,
    exited,
    async start() {
      // Links in what the plugin may read or write are checked at every start (files change).
      const paths = await checkGrants(`plugin ${settings.name}`, grantRoots(settings));
      // Stopped during the check (a shutdown): a worker made now would be nobody's.
      if (ended) throw new Error("the sandbox was stopped while it was starting");
      worker = new Worker(WORKER_URL, {
        type: "module",
        name: settings.name,
        deno: { permissions: workerPermissions(settings, paths) },
      });
      worker.onmessage = (event) => {
        if (event.data instanceof ArrayBuffer) onBatch(0, new Uint8Array(event.data));
        else end("violation", "the worker sent something that is not a batch");
      };
      worker.onerror = (event) => {
        event.preventDefault();
        end("crash", `worker error: ${event.message}`);
      };
      worker.onmessageerror = () => end("violation", "the worker sent an unreadable message");
      const init: WorkerInit = {
        module: settings.module,
        name: settings.name,
        logLinesPerSecond: settings.logLinesPerSecond,
      };
      worker.postMessage(init);
    },
    send(_slot, batch) {
      worker?.postMessage(batch.buffer, [batch.buffer]);
    },
    kill(cause, message) {
      end(cause, message);
    },
  };
}
