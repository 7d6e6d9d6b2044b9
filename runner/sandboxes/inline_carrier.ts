/**
 * Runs a plugin on the runner's own event loop (`isolation: "inline"`): the fastest mode, for
 * trusted first-party code only. There is no hop at all: a batch is handed to the plugin's
 * {@linkcode PluginRuntime} by a plain call and its answer comes back the same way, one
 * microtask later. The plugin has every permission the runner has, its console writes to the
 * runner's own output, and nothing can stop it: a loop freezes the runner and a heap
 * exhaustion ends it. That is why third-party plugins get their own process.
 *
 * @module
 */
import type { PluginSettings } from "../config/config.ts";
import type { BatchSink, Carrier, Exit } from "./supervisor.ts";
import type { FailureCause } from "./plugin_host.ts";
import { limitedLog } from "../../sandbox/console_capture.ts";
import { PluginRuntime } from "../../sandbox/plugin_runtime.ts";

/** A carrier of one inline plugin runtime. */
export function inlineCarrier(
  _key: string,
  plugins: readonly PluginSettings[],
  onBatch: BatchSink,
): Carrier {
  const settings = plugins[0]!;
  let runtime: PluginRuntime | null = null;
  let resolveExit!: (exit: Exit) => void;
  const exited = new Promise<Exit>((resolve) => resolveExit = resolve);
  let ended = false;
  // Also when no runtime was made: the supervisor waits for `exited`.
  const end = (cause: FailureCause, message: string) => {
    if (ended) return;
    ended = true;
    // Nothing can stop code that is running; what the old runtime still sends is dropped, and
    // a restart makes a new one (the plugin module itself stays loaded, with its state).
    runtime = null;
    resolveExit({ cause, message });
  };
  return {
    pid: null,
    exited,
    start() {
      const own: PluginRuntime = new PluginRuntime((batch) => {
        // A copy: the runner keeps views of what it decodes, the runtime reuses its buffer.
        if (runtime === own) onBatch(0, batch.slice());
      }, limitedLog);
      runtime = own;
      own.load({
        module: settings.module,
        name: settings.name,
        logLinesPerSecond: settings.logLinesPerSecond,
      });
      return Promise.resolve();
    },
    send(_slot, batch) {
      try {
        // A copy: the runtime keeps views of a call's request until the call ends.
        runtime?.receive(batch.slice());
      } catch (error) {
        end("violation", `the plugin runtime refused a batch: ${(error as Error).message}`);
      }
    },
    kill(cause, message) {
      end(cause, message);
    },
  };
}
