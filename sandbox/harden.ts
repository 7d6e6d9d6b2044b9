/**
 * Removes what plugin code must not have from a plugin worker's global scope, before the plugin
 * module loads. The worker's Deno permissions are the real boundary; this is defence in depth
 * against what permissions do not cover (DESIGN.md §2): killing or signalling its own process,
 * swallowing SIGTERM, talking to other workers, writing through the Cache API, reading the
 * process's arguments, and reaching the channel to the runner.
 *
 * @module
 */

/** The capabilities the worker runtime keeps for itself. */
export interface Capabilities {
  /** The real `postMessage` to the parent. */
  post(message: unknown, transfer?: Transferable[]): void;
  /** Registers a listener on the worker scope (taken before plugin code can replace it). */
  listen(type: string, listener: (event: Event) => void): void;
  /** Inspects a value for log output. */
  inspect(value: unknown): string;
}

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

/** Hardens the current worker scope and returns what the runtime needs to keep working. */
export function harden(): Capabilities {
  const scope = globalThis as unknown as {
    postMessage(message: unknown, transfer?: Transferable[]): void;
    addEventListener(type: string, listener: (event: Event) => void): void;
  };
  const post = scope.postMessage.bind(scope);
  const listen = scope.addEventListener.bind(scope);
  const inspect = Deno.inspect.bind(Deno);

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

  const deno = Deno as unknown as Record<string, unknown>;
  const refuse = (name: string) => () => denied(`Deno.${name}`);
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
    ]
  ) {
    replace(deno, name, refuse(name));
  }
  for (const name of ["stdin", "stdout", "stderr"]) replace(deno, name, undefined);
  replace(deno, "args", Object.freeze([]));
  replace(deno, "mainModule", "");
  const permissions = Deno.permissions;
  replace(permissions, "request", () => denied("Deno.permissions.request"));
  replace(permissions, "requestSync", () => denied("Deno.permissions.requestSync"));
  Object.freeze(permissions);

  return { post, listen, inspect };
}
