/**
 * `deno task new-plugin NAME`: scaffolds a plugin and its unit test from the templates in
 * `scripts/templates/`, then says how to run it in `deno task dev` and try it through the
 * local gateway.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { join, relative, resolve } from "node:path";

const TEMPLATES = new URL("./templates/", import.meta.url);

const USAGE = `Usage: deno task new-plugin <name> [options]

Creates <dir>/<name>.ts (a working plugin to edit) and <dir>/<name>_test.ts (its unit test).
The name is what routes use: lower case letters, digits and "-", starting with a letter.

Options:
  -d, --dir <dir>   Where to put them (default: plugins)
  -f, --force       Overwrite existing files
  -h, --help        Show this help`;

/** The file stem of a plugin name: `my-auth` → `my_auth`. */
export function fileStem(name: string): string {
  return name.replace(/-/g, "_");
}

/** The type prefix of a plugin name: `my-auth` → `MyAuth`. */
export function typeName(name: string): string {
  return name.split("-").map((part) => part[0]!.toUpperCase() + part.slice(1)).join("");
}

/** Fills a template. */
export function fill(template: string, name: string): string {
  return template.replaceAll("__NAME__", name).replaceAll("__FILE__", fileStem(name))
    .replaceAll("__TYPE__", typeName(name));
}

/** Creates the plugin; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        dir: { type: "string", short: "d" },
        force: { type: "boolean", short: "f" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: true,
    });
  } catch (error) {
    console.error(`error: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    console.error(`error: expected one plugin name, got ${positionals.length}\n\n${USAGE}`);
    return 2;
  }
  const name = positionals[0]!;
  if (!/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/.test(name) || name.length > 64) {
    console.error(
      `error: plugin name ${JSON.stringify(name)}: expected lower case letters, digits and ` +
        `single "-" between them, starting with a letter (e.g. "my-auth"), at most 64 characters`,
    );
    return 2;
  }
  const dir = resolve(values.dir ?? "plugins");
  const plugin = join(dir, `${fileStem(name)}.ts`);
  const test = join(dir, `${fileStem(name)}_test.ts`);
  for (const file of [plugin, test]) {
    const exists = await Deno.stat(file).then(() => true, () => false);
    if (exists && !values.force) {
      console.error(`error: ${relative(Deno.cwd(), file)} exists; pass --force to overwrite it`);
      return 1;
    }
  }
  await Deno.mkdir(dir, { recursive: true });
  const read = (file: string) => Deno.readTextFile(fileURLToPath(new URL(file, TEMPLATES)));
  await Deno.writeTextFile(plugin, fill(await read("plugin.ts.tmpl"), name));
  await Deno.writeTextFile(test, fill(await read("plugin_test.ts.tmpl"), name));

  const shown = (file: string) => relative(Deno.cwd(), file) || file;
  console.log(`created ${shown(plugin)} and ${shown(test)}

Next:
  deno test ${shown(test)}                 # its unit test
  # a runner configuration with it (runner.jsonc):
  #   { "plugins": { "${name}": { "module": "./${shown(plugin)}" } } }
  deno task dev -c runner.jsonc            # reloads the plugin whenever you save it
  # a route for it in examples/routes.jsonc:
  #   { "uri": "/${name}", "upstream": "echo",
  #     "plugins": { "ext-plugin-pre-req": { "conf": [{ "name": "${name}", "value": {} }] } } }
  deno task gateway                        # then: curl -i http://127.0.0.1:9080/${name}
  deno run -A main.ts check -c runner.jsonc --conf '${name}={"value":"on"}'`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
