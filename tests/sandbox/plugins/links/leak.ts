/**
 * Attack: read (and write) through links in the plugin's own files. The links suite copies
 * this module into a directory of its own and puts links beside it (`pkgdata -> /`, …); the
 * plugin then reads `./pkgdata/…` relative to its module by every route. It has no imports, so
 * its copy loads from anywhere.
 *
 * Its name is its directory's (the suite names each copy's directory after its plugin).
 *
 * The conf names the files (relative to the module) and, optionally, a directory to write in
 * and a path to make links at. The answer's body is a JSON object: route → `read:<text>` /
 * `wrote` / `linked`, or `denied:<ErrorName>`.
 *
 * @module
 */
import { linkSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";

interface Conf {
  /** A file to read, relative to this module. */
  file?: string;
  /** A JSON file to import, relative to this module. */
  json?: string;
  /** A file to write, relative to this module or absolute. */
  write?: string;
  /** Where to try to make links at run time (absolute), and a file they would link to. */
  linkAt?: string;
  linkTo?: string;
}

type Results = Record<string, string>;

async function tryRoute(results: Results, name: string, route: () => unknown): Promise<void> {
  try {
    const value = await route();
    const done = value === "wrote" || value === "linked";
    results[name] = done ? String(value) : `read:${String(value).slice(0, 200)}`;
  } catch (error) {
    results[name] = `denied:${(error as Error)?.name ?? typeof error}`;
  }
}

export default {
  name: new URL(".", import.meta.url).pathname.split("/").at(-2)!,
  parseConf: (raw: string): Conf => JSON.parse(raw),
  async requestFilter(
    conf: Conf,
    _req: unknown,
    res: { status: number; body: string | Uint8Array | null },
  ) {
    const results: Results = {};
    const at = (path: string) => new URL(path, import.meta.url);
    if (conf.file) {
      const url = at(conf.file);
      await tryRoute(results, "readTextFile", () => Deno.readTextFile(url));
      await tryRoute(results, "nodeReadFileSync", () => readFileSync(url, "utf8"));
      await tryRoute(results, "fetchFileUrl", () => fetch(url).then((r) => r.text()));
    }
    if (conf.json) {
      const url = at(conf.json);
      await tryRoute(
        results,
        "computedJsonImport",
        () => import(url.href, { with: { type: "json" } }).then((m) => JSON.stringify(m.default)),
      );
      // Literal: resolved against the process's permissions (DESIGN.md §2).
      await tryRoute(
        results,
        "literalImport",
        () =>
          import("./pkgdata/secret.json", { with: { type: "json" } })
            .then((m) => JSON.stringify(m.default)),
      );
    }
    if (conf.write) {
      const path = conf.write.startsWith("/") ? conf.write : at(conf.write);
      await tryRoute(
        results,
        "writeTextFile",
        () => Deno.writeTextFile(path, "written").then(() => "wrote"),
      );
      await tryRoute(results, "nodeWriteFileSync", () => (writeFileSync(path, "written"), "wrote"));
    }
    if (conf.linkAt && conf.linkTo) {
      const at = conf.linkAt;
      const to = conf.linkTo;
      await tryRoute(
        results,
        "symlinkRoot",
        () => Deno.symlink("/", `${at}/root`).then(() => "linked"),
      );
      await tryRoute(
        results,
        "symlinkFile",
        () => Deno.symlink(to, `${at}/file`).then(() => "linked"),
      );
      await tryRoute(
        results,
        "symlinkRelative",
        () => Deno.symlink("..", `${at}/up`).then(() => "linked"),
      );
      await tryRoute(
        results,
        "nodeSymlinkSync",
        () => (symlinkSync("/", `${at}/node-root`), "linked"),
      );
      await tryRoute(results, "hardLink", () => Deno.link(to, `${at}/hard`).then(() => "linked"));
      await tryRoute(results, "nodeLinkSync", () => (linkSync(to, `${at}/node-hard`), "linked"));
      await tryRoute(results, "readThroughRoot", () => Deno.readTextFile(`${at}/root/etc/passwd`));
      await tryRoute(results, "readThroughFile", () => Deno.readTextFile(`${at}/file`));
      await tryRoute(results, "readThroughHard", () => Deno.readTextFile(`${at}/hard`));
    }
    res.status = 200;
    res.body = JSON.stringify(results);
  },
};
