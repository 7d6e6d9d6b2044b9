/**
 * The sandbox role of the program (`main.ts sandbox <channel>`): a process the runner starts
 * for one plugin or one shared group. Its main thread is trusted and small: it connects its
 * control connection to the private channel, starts one Web Worker per plugin with that
 * plugin's permissions (plus, until the worker has opened its own connection to the runner, the
 * channel's path), drops the permissions it no longer needs, and then only supervises: it
 * reports worker errors and watches the process's resident memory. Batches do not pass through
 * it: each worker has its own connection (see `plugin_worker.ts`).
 *
 * @module
 */
import { ChannelReader, ChannelWriter, CONTROL_SLOT } from "./channel.ts";
import type { SlotInit } from "./plugin_worker.ts";

/** The environment variable that carries the channel's secret into a sandbox. */
export const SECRET_ENV = "A6_SANDBOX_SECRET";

/** One plugin worker to start. */
export interface SlotSpec {
  name: string;
  module: string;
  /** The plugin's permissions plus the channel's path (which the worker revokes once open). */
  permissions: Deno.PermissionOptionsObject;
  logLinesPerSecond: number;
  /** What the worker presents when it connects, so that it speaks only for its own slot. */
  secret: string;
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
  /**
   * The resident-memory limit of the whole process, in MiB. The sandbox watches itself: the
   * runner cannot read another process's /proc files without --allow-all, and ArrayBuffers live
   * outside the V8 heap limit.
   */
  memoryLimitMb: number;
}

/**
 * Control messages the runner sends a sandbox after its init: whether its plugins have work
 * (calls or conf parses in flight, or batches within the last second). The memory watch polls
 * fast only while they do, so an idle sandbox does not wake up 20 times a second.
 */
export interface SandboxActivity {
  busy: boolean;
}

/** Control messages a sandbox sends to the runner. */
export type SandboxEvent =
  | { event: "worker-error"; slot: number; message: string }
  | { event: "violation"; slot: number; message: string }
  | { event: "memory"; message: string };

// An ArrayBuffer bomb fills pages at 1–2 GiB/s: while the plugins have work, look often enough
// that the overshoot stays small.
const MEMORY_POLL_MS = 50;
// While they have none, a plugin runs only its own timers and I/O: look once a second, and
// fast again as soon as the memory grew by more than MEMORY_GROWTH since the last look.
const IDLE_MEMORY_POLL_MS = 1000;
const MEMORY_GROWTH = 8 * 1024 * 1024;
// How long the runner has to kill the sandbox after a memory report before it ends itself.
const MEMORY_GRACE_MS = 500;

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
  await Deno.permissions.revoke({ name: "env", variable: SECRET_ENV });

  const reader = new ChannelReader(conn);
  const first = await reader.next();
  if (!first || first.slot !== CONTROL_SLOT) die("the runner did not send an init message");
  const init = JSON.parse(new TextDecoder().decode(first.batch)) as SandboxInit;

  const control = (event: SandboxEvent) =>
    writer.send(CONTROL_SLOT, new TextEncoder().encode(JSON.stringify(event)));

  // The plugin workers run on other threads, so this timer keeps firing while they allocate.
  const limitBytes = init.memoryLimitMb * 1024 * 1024;
  let busy = true;
  let lastRss = 0;
  let memoryWatch: ReturnType<typeof setTimeout> | undefined;
  const watchMemory = () => {
    const rss = Deno.memoryUsage().rss;
    if (rss > limitBytes) {
      const message = `resident memory ${Math.round(rss / 1048576)} MiB exceeded ` +
        `${init.memoryLimitMb} MiB`;
      control({ event: "memory", message });
      setTimeout(() => die(message), MEMORY_GRACE_MS);
      return;
    }
    const growing = rss - lastRss > MEMORY_GROWTH;
    lastRss = rss;
    memoryWatch = setTimeout(
      watchMemory,
      busy || growing ? MEMORY_POLL_MS : IDLE_MEMORY_POLL_MS,
    );
  };
  watchMemory();
  const setBusy = (now: boolean) => {
    const wasBusy = busy;
    busy = now;
    // Work arrives: look again soon instead of at the end of an idle interval.
    if (now && !wasBusy) {
      clearTimeout(memoryWatch);
      memoryWatch = setTimeout(watchMemory, MEMORY_POLL_MS);
    }
  };

  init.slots.forEach((spec, slot) => {
    const worker = new Worker(new URL("./plugin_worker.ts", import.meta.url), {
      type: "module",
      name: spec.name,
      deno: { permissions: spec.permissions },
    });
    // The worker runtime never posts to this thread (it speaks over its own connection).
    worker.onmessage = () => {
      control({ event: "violation", slot, message: "the worker posted a message" });
    };
    worker.onerror = (event) => {
      event.preventDefault();
      control({ event: "worker-error", slot, message: event.message });
    };
    worker.onmessageerror = () => {
      control({ event: "violation", slot, message: "the worker sent an unreadable message" });
    };
    const slotInit: SlotInit = {
      module: spec.module,
      name: spec.name,
      logLinesPerSecond: spec.logLinesPerSecond,
      channel,
      slot,
      secret: spec.secret,
    };
    worker.postMessage(slotInit);
  });
  // Each worker holds its own copy of its permissions from its creation on: this thread can
  // drop the channel (and whatever the compiled binary granted beyond the plugins) now.
  await Deno.permissions.revoke({ name: "read", path: channel });
  await Deno.permissions.revoke({ name: "write", path: channel });
  await Deno.permissions.revoke(
    { name: "net", host: `unix:${channel}` } as Deno.NetPermissionDescriptor,
  );
  for (const name of init.revoke) {
    await Deno.permissions.revoke({ name } as Deno.PermissionDescriptor);
  }

  for (;;) {
    let frame;
    try {
      frame = await reader.next();
    } catch (error) {
      die(`channel broken: ${(error as Error).message}`);
    }
    // The runner is gone: so is every reason to live.
    if (!frame) Deno.exit(0);
    if (frame.slot !== CONTROL_SLOT) {
      die(`a batch for slot ${frame.slot} on the control connection`);
    }
    const activity = JSON.parse(new TextDecoder().decode(frame.batch)) as SandboxActivity;
    setBusy(activity.busy === true);
  }
}
