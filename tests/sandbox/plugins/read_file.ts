/**
 * Attack: read a file the operator did not grant, through every file API, after reading one
 * that was granted (reported in `x-granted`, to show the grant works).
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { attempt, headerValue } from "./attempts.ts";

interface Conf {
  granted: string;
  secret: string;
  runnerFile: string;
}

export default definePlugin<Conf>({
  name: "read_file",
  parseConf: (raw) => JSON.parse(raw),
  async requestFilter(conf, req, res) {
    // Uncaught, the refusal reaches the runner as the call's outcome ("denied").
    if (req.headers.has("x-uncaught")) await Deno.readTextFile(conf.secret);
    res.headers.set("x-granted", headerValue(await Deno.readTextFile(conf.granted)));
    const secret = conf.secret;
    await attempt(res, {
      readTextFile: () => Deno.readTextFile(secret),
      readFileSync: () => Deno.readFileSync(secret),
      open: () => Deno.open(secret),
      stat: () => Deno.stat(secret),
      readDir: () => Array.from(Deno.readDirSync(secret.slice(0, secret.lastIndexOf("/")))),
      fetchFileUrl: () => fetch(`file://${secret}`).then((r) => r.text()),
      nodeReadFileSync: () => readFileSync(secret, "utf8"),
      nodeReadFile: () => readFile(secret, "utf8"),
      computedImport: () => import(`file://${secret}`),
      procEnviron: () => Deno.readTextFile("/proc/self/environ"),
      runnerSource: () => Deno.readTextFile(conf.runnerFile),
      etcPasswd: () => Deno.readTextFile("/etc/passwd"),
    });
  },
});
