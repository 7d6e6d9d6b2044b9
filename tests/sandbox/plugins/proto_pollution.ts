/**
 * Attack: pollute the prototypes of its own realm and return an action list full of names that
 * would pollute an object-based decoder (`__proto__`, `constructor`, `prototype`), hoping the
 * runner or the next plugin in the chain picks the pollution up.
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";

export default definePlugin({
  name: "proto_pollution",
  requestFilter(_conf, req, res) {
    const polluted = Object.prototype as unknown as Record<string, unknown>;
    polluted.polluted = "yes";
    polluted.isAdmin = true;
    (Array.prototype as unknown as Record<string, unknown>).evil = "yes";
    for (const name of ["__proto__", "constructor", "prototype", "hasOwnProperty"]) {
      req.headers.set(name, `pwn-${name}`);
      req.args.set(name, `pwn-${name}`);
      res.headers.append(name, `pwn-${name}`);
    }
    req.headers.set("x-admin", "true");
  },
});
