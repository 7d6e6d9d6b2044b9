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
  const end = (cause: FailureCause, message: string) => {
    if (!worker) return;
    worker.terminate();
    worker = null;
    resolveExit({ cause, message });
  };
  return {
    pid: null,
    exited,
    start() {
      worker = new Worker(WORKER_URL, {
        type: "module",
        name: settings.name,
        deno: { permissions: workerPermissions(settings) },
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
      return Promise.resolve();
    },
    send(_slot, batch) {
      worker?.postMessage(batch.buffer, [batch.buffer]);
    },
    kill(cause, message) {
      end(cause, message);
    },
  };
}
