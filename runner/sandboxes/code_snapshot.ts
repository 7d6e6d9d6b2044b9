/**
 * Notices when the code a sandbox loads changes on disk under a running runner (a `git pull` in
 * place, say). Sandboxes load their modules from disk each time they start, so a restarted one
 * would run the new files against a runner still speaking the old ones' message format. Under
 * `deno compile` the code is embedded and cannot change.
 *
 * @module
 */
import { join } from "node:path";

/** The files under some paths, with their sizes and modification times, at one moment. */
export class CodeSnapshot {
  #roots: readonly string[];
  #files: Map<string, string>;

  private constructor(roots: readonly string[], files: Map<string, string>) {
    this.#roots = roots;
    this.#files = files;
  }

  /** Records every file under `roots` (files or directories). */
  static async take(roots: readonly string[]): Promise<CodeSnapshot> {
    return new CodeSnapshot(roots, await describe(roots));
  }

  /** A file added, removed or changed since the snapshot was taken, or null if none was. */
  async firstChange(): Promise<string | null> {
    const now = await describe(this.#roots);
    for (const [path, stamp] of now) {
      if (this.#files.get(path) !== stamp) return path;
    }
    for (const path of this.#files.keys()) {
      if (!now.has(path)) return path;
    }
    return null;
  }
}

async function describe(roots: readonly string[]): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const visit = async (path: string) => {
    const info = await Deno.stat(path).catch(() => null);
    if (!info) return;
    if (info.isDirectory) {
      for await (const entry of Deno.readDir(path)) await visit(join(path, entry.name));
    } else if (info.isFile) {
      files.set(path, `${info.size}:${info.mtime?.getTime() ?? 0}`);
    }
  };
  for (const root of roots) await visit(root);
  return files;
}
