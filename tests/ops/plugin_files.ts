/**
 * Plugin source files that tests write, change and break, to exercise reloads. They are plain
 * objects (no import of the API), so they load from any directory.
 *
 * @module
 */

/** A plugin named `name` answering with `body`, after `conf.delayMs` when the conf says so. */
export function versionedPlugin(name: string, body: string, strictConf = false): string {
  return `export default {
  name: ${JSON.stringify(name)},
  parseConf(raw) {
    const conf = JSON.parse(raw);
    if (conf.parseDelayMs) return new Promise((resolve) => setTimeout(() => resolve(conf), conf.parseDelayMs));
    ${strictConf ? 'if (conf.delayMs !== undefined) throw new TypeError("delayMs is gone");' : ""}
    return conf;
  },
  async requestFilter(conf, _req, res) {
    if (conf.delayMs) await new Promise((resolve) => setTimeout(resolve, conf.delayMs));
    res.status = 200;
    res.body = ${JSON.stringify(body)};
  },
};
`;
}

/** A plugin file that no longer parses. */
export const BROKEN_PLUGIN = "export default { name: 'broken', requestFilter( {\n";

/** Writes `text` to `path` so that a watcher sees one complete change. */
export async function replaceFile(path: string, text: string): Promise<void> {
  const temp = `${path}.tmp-${crypto.randomUUID()}`;
  await Deno.writeTextFile(temp, text);
  await Deno.rename(temp, path);
}
