/**
 * The entry module of a plugin's Web Worker in a sandbox process. It hardens the worker scope
 * and captures console output; then, told by the sandbox's main thread where the runner
 * listens, it opens its own end of the channel to the runner (presenting its slot's secret),
 * gives up the permissions to open it again, and only then loads the plugin into a
 * {@linkcode PluginRuntime} that serves the batches read from that connection. The sandbox's main
 * thread relays nothing: it only supervises (memory, worker errors) over its own connection.
 *
 * @module
 */
import { harden } from "./harden.ts";
// Loaded here so that plugins importing the API find it already loaded: a plugin's worker may
// read only the plugin's own directory.
import "../mod.ts";
import { ChannelReader, ChannelWriter } from "./channel.ts";
import { captureConsole } from "./console_capture.ts";
import { PluginRuntime, type WorkerInit } from "./plugin_runtime.ts";

export type { WorkerInit } from "./plugin_runtime.ts";

/** What the sandbox's main thread tells a worker: its plugin, and its end of the channel. */
export interface SlotInit extends WorkerInit {
  /** The runner's private socket. */
  channel: string;
  /** This worker's slot in the sandbox. */
  slot: number;
  /** The slot's own secret (another slot's worker cannot speak for this one). */
  secret: string;
}

// A worker with this much unsent output is flooding: it closes its channel, and the runner
// ends the sandbox.
const MAX_BACKLOG = 256 * 1024 * 1024;

const caps = harden();
// Taken before the plugin loads: plugin code may replace or freeze what it can reach.
const connect = Deno.connect;
const revoke = Deno.permissions.revoke.bind(Deno.permissions);

async function open(init: SlotInit): Promise<void> {
  const conn = await connect({ transport: "unix", path: init.channel });
  const writer = new ChannelWriter(conn);
  writer.send(init.slot, new TextEncoder().encode(init.secret));
  // The channel is open: this worker, and the plugin it is about to load, may not open it
  // again (per-path revocation; the runner also unlinks the path once every slot connected).
  await revoke({ name: "read", path: init.channel });
  await revoke({ name: "write", path: init.channel });
  await revoke({ name: "net", host: `unix:${init.channel}` } as Deno.NetPermissionDescriptor);

  const slot = init.slot;
  const runtime = new PluginRuntime(
    (batch) => {
      writer.send(slot, batch);
      if (writer.backlog > MAX_BACKLOG) conn.close();
    },
    (emit) => captureConsole(caps.inspect, emit),
  );
  await runtime.load({
    module: init.module,
    name: init.name,
    logLinesPerSecond: init.logLinesPerSecond,
  });
  const reader = new ChannelReader(conn);
  for (;;) {
    let frame;
    try {
      frame = await reader.next();
    } catch {
      break;
    }
    // The runner is gone (the main thread ends the process as well).
    if (!frame) break;
    try {
      runtime.receive(frame.batch);
    } catch (error) {
      console.error(`a batch from the runner was refused: ${error}`);
    }
  }
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

let opened = false;
caps.listen("message", (event) => {
  const data = (event as MessageEvent).data;
  if (opened || typeof data !== "object" || data === null) return;
  opened = true;
  open(data as SlotInit).catch((error) => {
    console.error(`the worker could not open its channel: ${error}`);
  });
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
