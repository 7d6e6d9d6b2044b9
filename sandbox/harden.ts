/**
 * Removes what plugin code must not have from a plugin worker, before the plugin module loads.
 * The worker's Deno permissions are the real boundary; this is defence in depth against what
 * permissions do not cover (DESIGN.md §2, docs/sandbox.md): signalling its own process (Deno
 * 2.9 opens an inspector on 127.0.0.1:9229 when a process gets SIGUSR1), swallowing SIGTERM,
 * exiting, talking to other workers, writing through the Cache API, starting unhardened nested
 * workers, and writing to the process's stdio past the console capture.
 *
 * Node compatibility is loaded here on purpose: `node:process` bootstraps itself from the
 * `Deno` namespace the first time it is imported, so it must see the real one, and its object
 * has its own routes to `kill`, `exit` and signals that must be closed as well.
 *
 * @module
 */
import process from "node:process";
import { registerHooks } from "node:module";

/** The capabilities the worker runtime keeps for itself. */
export interface Capabilities {
  /** The real `postMessage` to the parent. */
  post(message: unknown, transfer?: Transferable[]): void;
  /** Registers a listener on the worker scope (taken before plugin code can replace it). */
  listen(type: string, listener: (event: Event) => void): void;
  /** Inspects a value for log output. */
  inspect(value: unknown): string;
}

/**
 * Built-in modules a plugin may not import (with or without `node:`): nested workers are not
 * hardened, the inspector runs code outside the worker, `node:module` could register a resolve
 * hook ahead of ours, and `node:v8` can change engine flags at run time.
 */
export const BLOCKED_BUILTINS: ReadonlySet<string> = new Set([
  "worker_threads",
  "inspector",
  "inspector/promises",
  "module",
  "v8",
  "trace_events",
]);

/** The error plugins get for a removed capability. */
function denied(what: string): never {
  throw new Deno.errors.NotCapable(`${what} is not available to plugins`);
}

function replace(target: object, key: PropertyKey, value: unknown): void {
  try {
    Object.defineProperty(target, key, { value, writable: false, configurable: false });
  } catch {
    // A non-configurable property stays; the permission checks still apply to it.
  }
}

/** Makes reading `key` throw; a property the runtime made non-configurable stays. */
function guard(target: object, key: PropertyKey, get: () => never): void {
  try {
    Object.defineProperty(target, key, { get, configurable: false });
  } catch {
    // Non-configurable in this Deno version: left as it is.
  }
}

function removeEverywhere(key: PropertyKey): void {
  for (let o: object | null = globalThis; o; o = Object.getPrototypeOf(o)) {
    if (Object.prototype.hasOwnProperty.call(o, key)) {
      try {
        delete (o as Record<PropertyKey, unknown>)[key];
      } catch { /* handled below */ }
      if (Object.prototype.hasOwnProperty.call(o, key)) replace(o, key, undefined);
    }
  }
}

/** The built-in module a specifier or resolved URL names, if it is a blocked one. */
export function blockedBuiltin(specifier: string): string | null {
  const name = specifier.startsWith("node:") ? specifier.slice(5) : specifier;
  return BLOCKED_BUILTINS.has(name) ? name : null;
}

function blockImports(): void {
  type Resolved = { url: string };
  registerHooks({
    resolve(specifier, context, next) {
      const name = blockedBuiltin(specifier);
      if (name) denied(`the built-in module node:${name}`);
      const resolved = next(specifier, context) as Resolved;
      const target = blockedBuiltin(resolved.url);
      if (target) denied(`the built-in module node:${target}`);
      return resolved;
    },
  });
}

/** The parts of a Node writable stream that plugin code and its libraries use on stdio. */
interface ConsoleStream {
  readonly isTTY: false;
  readonly writable: true;
  write(chunk: unknown, encoding?: unknown, callback?: unknown): boolean;
  end(): ConsoleStream;
  on(): ConsoleStream;
  once(): ConsoleStream;
  off(): ConsoleStream;
  removeListener(): ConsoleStream;
  hasColors(): boolean;
  getColorDepth(): number;
}

/** A stand-in for `process.stdout` / `process.stderr` that writes through the console. */
function consoleStream(write: (line: string) => void): ConsoleStream {
  const decoder = new TextDecoder();
  const self = (): ConsoleStream => stream;
  const stream: ConsoleStream = {
    isTTY: false,
    writable: true,
    write(chunk, encoding, callback) {
      const text = typeof chunk === "string"
        ? chunk
        : chunk instanceof Uint8Array
        ? decoder.decode(chunk)
        : String(chunk);
      write(text.endsWith("\n") ? text.slice(0, -1) : text);
      const done = typeof encoding === "function" ? encoding : callback;
      if (typeof done === "function") queueMicrotask(() => done());
      return true;
    },
    end: self,
    on: self,
    once: self,
    off: self,
    removeListener: self,
    hasColors: () => false,
    getColorDepth: () => 1,
  };
  return stream;
}

/** A stand-in that refuses to run, also when called with `new` (for `Deno.Command`). */
function refusal(what: string): () => never {
  return function refused(): never {
    denied(what);
  };
}

function hardenNodeProcess(): void {
  const target = process as unknown as Record<string, unknown>;
  const refuse = (name: string) => refusal(`process.${name}`);
  for (
    const name of [
      "kill",
      "exit",
      "reallyExit",
      "abort",
      "dlopen",
      "chdir",
      "setuid",
      "setgid",
      "seteuid",
      "setegid",
      "setgroups",
      "initgroups",
      "_debugProcess",
      "_kill",
    ]
  ) {
    replace(target, name, refuse(name));
  }
  // Signal events would install process-wide handlers (and SIGUSR1 opens the inspector).
  const isSignal = (event: unknown) => typeof event === "string" && /^SIG[A-Z0-9]+$/.test(event);
  for (
    const name of ["on", "addListener", "prependListener", "once", "prependOnceListener"]
  ) {
    const original = target[name] as (...args: unknown[]) => unknown;
    replace(target, name, function (this: unknown, event: unknown, ...rest: unknown[]) {
      if (isSignal(event)) denied(`listening for ${String(event)}`);
      return original.call(this, event, ...rest);
    });
  }
  const getBuiltin = target.getBuiltinModule as ((id: string) => unknown) | undefined;
  if (getBuiltin) {
    replace(target, "getBuiltinModule", (id: string) => {
      const name = blockedBuiltin(String(id));
      if (name) denied(`the built-in module node:${name}`);
      return getBuiltin.call(process, id);
    });
  }
  const umask = target.umask as ((mask?: number) => number) | undefined;
  if (umask) {
    replace(target, "umask", (mask?: number) => {
      if (mask !== undefined) denied("process.umask(mask)");
      return umask.call(process);
    });
  }
  // The real argv names the sandbox's private channel (harmless once it is open, but private).
  replace(target, "argv", Object.freeze([target.execPath]));
  replace(target, "stdout", consoleStream((line) => console.log(line)));
  replace(target, "stderr", consoleStream((line) => console.error(line)));
  guard(target, "stdin", () => denied("process.stdin"));
}

/** Hardens the current worker scope and returns what the runtime needs to keep working. */
export function harden(): Capabilities {
  const scope = globalThis as unknown as {
    postMessage(message: unknown, transfer?: Transferable[]): void;
    addEventListener(type: string, listener: (event: Event) => void): void;
  };
  const post = scope.postMessage.bind(scope);
  const listen = scope.addEventListener.bind(scope);
  const inspect = Deno.inspect.bind(Deno);

  blockImports();
  hardenNodeProcess();

  // The channel to the parent, other workers, storage outside permissions, worker shutdown.
  for (
    const key of [
      "postMessage",
      "close",
      "BroadcastChannel",
      "caches",
      "CacheStorage",
      "Cache",
      "Worker",
      "SharedWorker",
      "localStorage",
      "sessionStorage",
      "importScripts",
    ]
  ) {
    removeEverywhere(key);
  }
  // Web Locks are shared by every worker of the process: a channel between plugins.
  replace(Object.getPrototypeOf(navigator), "locks", undefined);

  // `Deno[Deno.internal]` holds the runtime's internals (core: raw reads and writes by
  // resource id, the exception and rejection hooks, a few ops); `nodeBootstrap` re-runs the
  // Node bootstrap. Neither is for plugins.
  const deno = Deno as unknown as Record<PropertyKey, unknown>;
  const internal = deno.internal;
  if (typeof internal === "symbol") delete deno[internal];
  delete deno.internal;
  removeEverywhere("nodeBootstrap");

  const refuse = (name: string) => refusal(`Deno.${name}`);
  for (
    const name of [
      "kill",
      "addSignalListener",
      "removeSignalListener",
      "exit",
      "execPath",
      "dlopen",
      "Command",
      "chown",
      "chdir",
    ]
  ) {
    replace(deno, name, refuse(name));
  }
  for (const name of ["stdin", "stdout", "stderr"]) replace(deno, name, undefined);
  replace(deno, "args", Object.freeze([]));
  replace(deno, "mainModule", "");
  const permissions = Deno.permissions;
  replace(permissions, "request", refusal("Deno.permissions.request"));
  replace(permissions, "requestSync", refusal("Deno.permissions.requestSync"));
  Object.freeze(permissions);

  return { post, listen, inspect };
}
