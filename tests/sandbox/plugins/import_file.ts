/**
 * Attack: load files as modules with literal `import()` specifiers, which Deno resolves when
 * the module loads (DESIGN.md §2: module loading uses the process's permissions, and a failed
 * parse shows the file's first line in the error).
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { attempt } from "./attempts.ts";

export default definePlugin({
  name: "import_file",
  async requestFilter(_conf, _req, res) {
    await attempt(res, {
      literalEtcPasswd: () => import("file:///etc/passwd"),
      literalEtcHostsJson: () => import("file:///etc/hosts", { with: { type: "json" } }),
      literalRunnerCode: () => import("../../../runner/config/config.ts"),
      literalDenoJson: () => import("../../../deno.json", { with: { type: "json" } }),
      literalProcEnviron: () => import("file:///proc/self/environ"),
      computedEtcPasswd: () => import(["file:///etc", "passwd"].join("/")),
    });
  },
});
