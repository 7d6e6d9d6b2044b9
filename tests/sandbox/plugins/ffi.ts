/**
 * Attack: load native code (ffi is never granted to sandboxed plugins).
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { attempt } from "./attempts.ts";

export default definePlugin({
  name: "ffi",
  async requestFilter(_conf, _req, res) {
    const process = (globalThis as unknown as {
      process: { dlopen(module: unknown, file: string): void };
    }).process;
    await attempt(res, {
      dlopen: () => Deno.dlopen("libc.so.6", { getpid: { parameters: [], result: "i32" } }),
      dlopenPath: () => Deno.dlopen("/lib/x86_64-linux-gnu/libc.so.6", {}),
      nodeDlopen: () => process.dlopen({ exports: {} }, "/lib/x86_64-linux-gnu/libc.so.6"),
      unsafePointer: () => Deno.UnsafePointer.create(1n),
    });
  },
});
