/**
 * `deno task new-plugin NAME`: scaffolds a plugin package from the templates in
 * `scripts/templates/` (its deno.json, mod.ts, mod_test.ts with the test kit, and a README),
 * then says the next commands: install its dependencies, run its test, try it with the runner
 * and the local gateway.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { join, relative, resolve } from "node:path";

const TEMPLATES = new URL("./templates/", import.meta.url);

const USAGE = `Usage: deno task new-plugin <name> [options]

Creates the plugin package <dir>/<name>/: deno.json (its dependencies), mod.ts (a working
plugin to edit), mod_test.ts (its unit test) and README.md. The name is what routes use:
lower case letters, digits and "-", starting with a letter.

Options:
  -d, --dir <dir>   Where to put the package (default: plugins)
  -f, --force       Overwrite existing files
  -h, --help        Show this help`;

/** The files of a package: its name there → the template it is filled from. */
const FILES: Readonly<Record<string, string>> = {
  "deno.json": "deno.json.tmpl",
  "mod.ts": "plugin.ts.tmpl",
  "mod_test.ts": "plugin_test.ts.tmpl",
  "README.md": "README.md.tmpl",
};

/** The file stem of a plugin name: `my-auth` → `my_auth`. */
export function fileStem(name: string): string {
  return name.replace(/-/g, "_");
}

/** The type prefix of a plugin name: `my-auth` → `MyAuth`. */
export function typeName(name: string): string {
  return name.split("-").map((part) => part[0]!.toUpperCase() + part.slice(1)).join("");
}

/** Fills a template (`__DIR__` is the package directory as the user sees it). */
export function fill(template: string, name: string, dir = "."): string {
  return template.replaceAll("__NAME__", name).replaceAll("__FILE__", fileStem(name))
    .replaceAll("__TYPE__", typeName(name)).replaceAll("__DIR__", dir);
}

/** Creates the plugin package; returns the exit code. */
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
  const pkg = join(resolve(values.dir ?? "plugins"), name);
  const shown = (file: string) => relative(Deno.cwd(), file) || file;
  for (const file of Object.keys(FILES)) {
    const path = join(pkg, file);
    const exists = await Deno.stat(path).then(() => true, () => false);
    if (exists && !values.force) {
      console.error(`error: ${shown(path)} exists; pass --force to overwrite it`);
      return 1;
    }
  }
  await Deno.mkdir(pkg, { recursive: true });
  const read = (file: string) => Deno.readTextFile(fileURLToPath(new URL(file, TEMPLATES)));
  for (const [file, template] of Object.entries(FILES)) {
    await Deno.writeTextFile(join(pkg, file), fill(await read(template), name, shown(pkg)));
  }

  const dir = shown(pkg);
  console.log(`created the plugin package ${dir}/ (deno.json, mod.ts, mod_test.ts, README.md)

Name it in a runner configuration (runner.jsonc):
  { "plugins": { "${name}": { "module": "./${dir}/mod.ts" } } }
and add its dependencies to ${dir}/deno.json ("imports": { "jose": "npm:jose@5.9.6" }).

Next:
  deno task install --config runner.jsonc    # pins and installs its dependencies
  deno test --config ${dir}/.apisix-runner/deno.json ${dir}/mod_test.ts
  deno task dev -c runner.jsonc              # then, for a route to it in examples/routes.jsonc:
  #   { "uri": "/${name}", "upstream": "echo",
  #     "plugins": { "ext-plugin-pre-req": { "conf": [{ "name": "${name}", "value": {} }] } } }
  #   deno task gateway, and curl -i http://127.0.0.1:9080/${name}`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
