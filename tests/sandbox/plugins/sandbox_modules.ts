/**
 * The worker runtime's own modules, as a hostile plugin finds them: a computed import of files
 * next to the API module it imported (`import.meta.resolve`). They are already loaded in the
 * worker, so the import needs no permission, and the plugin shares their classes with the
 * runtime: patching a prototype changes what the runtime writes to the runner.
 *
 * @module
 */
const api = import.meta.resolve("@apisix/deno-plugin-runner");

/** The runtime's patch module (its `Patch` is the one the worker encodes replies with). */
export const patchModule: typeof import("../../../api/patch.ts") = await import(
  new URL("./api/patch.ts", api).href
);

/** The runtime's message module (its `BatchWriter` writes every message to the runner). */
export const messagesModule: typeof import("../../../sandbox/messages.ts") = await import(
  new URL("./sandbox/messages.ts", api).href
);

/** The runtime's byte writer, as the patch encoder receives it. */
export type Writer = import("../../../api/bytes.ts").ByteWriter;
