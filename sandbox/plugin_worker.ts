/**
 * The entry module of a plugin's Web Worker. It hardens the worker scope, captures console
 * output, then hands the first message (a {@linkcode WorkerInit}) and every batch after it to
 * a {@linkcode PluginRuntime}, whose batches go back to the sandbox's main thread.
 *
 * @module
 */
import { harden } from "./harden.ts";
// Loaded here so that plugins importing the API find it already loaded: a plugin's worker may
// read only the plugin's own directory.
import "../mod.ts";
import { captureConsole } from "./console_capture.ts";
import { PluginRuntime, type WorkerInit } from "./plugin_runtime.ts";

export type { WorkerInit } from "./plugin_runtime.ts";

const caps = harden();

const runtime = new PluginRuntime(
  (batch) => caps.post(batch.buffer, [batch.buffer]),
  (emit) => captureConsole(caps.inspect, emit),
);

caps.listen("message", (event) => {
  const data = (event as MessageEvent).data;
  if (data instanceof ArrayBuffer) runtime.receive(new Uint8Array(data));
  else if (!runtime.started && typeof data === "object" && data !== null) {
    runtime.load(data as WorkerInit);
  }
});

// Errors that escape a plugin (a throw in a timer, a rejection nobody awaits) are logged under
// the plugin's name instead of ending the worker.
caps.listen("error", (event) => {
  event.preventDefault();
  const error = (event as ErrorEvent).error;
  console.error("uncaught error:", error);
});
caps.listen("unhandledrejection", (event) => {
  event.preventDefault();
  console.error("unhandled promise rejection:", (event as PromiseRejectionEvent).reason);
});
