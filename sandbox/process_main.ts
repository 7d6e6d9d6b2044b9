/**
 * The sandbox role of the program (`main.ts sandbox <channel>`): a process the runner starts
 * for one plugin or one shared group. Its main thread is trusted and small: it connects the
 * private channel, drops the permissions it no longer needs, starts one Web Worker per plugin
 * with that plugin's permissions, and relays batches between the channel and the workers.
 *
 * @module
 */
import { ChannelReader, ChannelWriter, CONTROL_SLOT } from "./channel.ts";
import type { WorkerInit } from "./plugin_worker.ts";

/** The environment variable that carries the channel's secret into a sandbox. */
export const SECRET_ENV = "A6_SANDBOX_SECRET";

/** One plugin worker to start. */
export interface SlotSpec {
  name: string;
  module: string;
  permissions: Deno.PermissionOptionsObject;
  logLinesPerSecond: number;
}

/** The first control message: what to run. */
export interface SandboxInit {
  slots: SlotSpec[];
  /**
   * Permission kinds to drop completely before any worker starts. Under `deno run` the
   * sandbox's flags already grant only what its plugins need; a compiled binary starts with
   * the binary's own grants and narrows itself here.
   */
  revoke: Deno.PermissionName[];
}

/** Control messages a sandbox sends to the runner. */
export type SandboxEvent =
  | { event: "worker-error"; slot: number; message: string }
  | { event: "violation"; slot: number; message: string }
  | { event: "rss"; bytes: number };

/**
 * How often the sandbox reports its resident memory. The runner cannot read /proc/<pid> itself:
 * Deno allows reading /proc only with --allow-all.
 */
export const RSS_REPORT_MS = 250;

// A worker that has this much unsent output is flooding: the sandbox gives up.
const MAX_BACKLOG = 256 * 1024 * 1024;

function die(message: string): never {
  console.error(`sandbox: ${message}`);
  Deno.exit(70);
}

/** Runs the sandbox role; `channel` is the path of the runner's private socket. */
export async function sandboxMain(channel: string): Promise<never> {
  const secret = Deno.env.get(SECRET_ENV);
  if (!channel || !secret) die(`usage: sandbox <channel socket>, with ${SECRET_ENV} set`);
  Deno.env.delete(SECRET_ENV);

  const conn = await Deno.connect({ transport: "unix", path: channel });
  const writer = new ChannelWriter(conn);
  writer.onError = () => Deno.exit(0);
  writer.send(CONTROL_SLOT, new TextEncoder().encode(secret));
  // The channel is open: nothing in this process may open it, or the secret, again.
  await Deno.permissions.revoke({ name: "env", variable: SECRET_ENV });
  await Deno.permissions.revoke({ name: "read", path: channel });
  await Deno.permissions.revoke({ name: "write", path: channel });
  await Deno.permissions.revoke(
    { name: "net", host: `unix:${channel}` } as Deno.NetPermissionDescriptor,
  );

  const reader = new ChannelReader(conn);
  const first = await reader.next();
  if (!first || first.slot !== CONTROL_SLOT) die("the runner did not send an init message");
  const init = JSON.parse(new TextDecoder().decode(first.batch)) as SandboxInit;
  for (const name of init.revoke) {
    await Deno.permissions.revoke({ name } as Deno.PermissionDescriptor);
  }

  const control = (event: SandboxEvent) =>
    writer.send(CONTROL_SLOT, new TextEncoder().encode(JSON.stringify(event)));

  const workers = init.slots.map((spec, slot) => {
    const worker = new Worker(new URL("./plugin_worker.ts", import.meta.url), {
      type: "module",
      name: spec.name,
      deno: { permissions: spec.permissions },
    });
    worker.onmessage = (event) => {
      const data = event.data;
      if (!(data instanceof ArrayBuffer)) {
        control({ event: "violation", slot, message: "the worker sent something not a batch" });
        return;
      }
      writer.send(slot, new Uint8Array(data));
      if (writer.backlog > MAX_BACKLOG) die(`plugin ${spec.name} flooded the channel`);
    };
    worker.onerror = (event) => {
      event.preventDefault();
      control({ event: "worker-error", slot, message: event.message });
    };
    worker.onmessageerror = () => {
      control({ event: "violation", slot, message: "the worker sent an unreadable message" });
    };
    const workerInit: WorkerInit = {
      module: spec.module,
      name: spec.name,
      logLinesPerSecond: spec.logLinesPerSecond,
    };
    worker.postMessage(workerInit);
    return worker;
  });

  const report = setInterval(
    () => control({ event: "rss", bytes: Deno.memoryUsage().rss }),
    RSS_REPORT_MS,
  );
  Deno.unrefTimer(report);

  for (;;) {
    let frame;
    try {
      frame = await reader.next();
    } catch (error) {
      die(`channel broken: ${(error as Error).message}`);
    }
    // The runner is gone: so is every reason to live.
    if (!frame) Deno.exit(0);
    const worker = workers[frame.slot];
    if (!worker) die(`a batch for unknown slot ${frame.slot}`);
    worker.postMessage(frame.batch.buffer, [frame.batch.buffer]);
  }
}
