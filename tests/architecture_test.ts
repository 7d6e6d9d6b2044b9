/**
 * The tree is the architecture (docs/architecture.md): every room imports only itself and the rooms
 * below it, bundled plugins import only what a third party has (`mod.ts`), and every runner file
 * sits in one of the runner's rooms. Read from the source, so a new import that climbs fails here
 * rather than in a review.
 */
import { deepEqual } from "node:assert/strict";
import { dirname, join, relative } from "node:path";
import { ROOT } from "./support/runner.ts";

/** Rooms from the ground floor up; a room may import rooms with a lower rank, and itself. */
const ROOMS: ReadonlyArray<readonly [room: string, rank: number]> = [
  ["deno.json", 0],
  ["protocol/", 0],
  ["api/", 1],
  ["mod.ts", 2],
  ["plugins/", 3],
  ["sandbox/", 3],
  ["testing/", 3],
  ["runner/telemetry/", 4],
  ["runner/config/", 5],
  ["runner/sandboxes/", 6],
  ["runner/apisix/", 7],
  ["runner/ops/", 8],
  ["main.ts", 9],
  ["gateway/", 10],
];
/** What a bundled plugin may import besides its own folder: what a third party has. */
const PLUGIN_MAY_IMPORT = ["mod.ts"];
/** Above every room: they may import anything. */
const TOP = ["scripts/", "benchmarks/", "tests/", "examples/"];

function roomOf(path: string): readonly [string, number] | undefined {
  return ROOMS.find(([room]) => room.endsWith("/") ? path.startsWith(room) : path === room);
}

// Static imports, `export ... from`, side-effect imports, dynamic imports, and worker URLs.
const SPECIFIERS = [
  /\bfrom\s+"([^"]+)"/g,
  /\bimport\s+"([^"]+)"/g,
  /\bimport\(\s*"([^"]+)"\s*\)/g,
  /new URL\(\s*"([^"]+\.ts)",\s*import\.meta\.url\s*\)/g,
];

async function sourceFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(join(ROOT, dir))) {
    const path = dir ? `${dir}/${entry.name}` : entry.name;
    if (entry.isDirectory) {
      if (entry.name === "node_modules" || entry.name.startsWith(".")) continue;
      if (path === "protocol/gen") continue; // Generated; imports only itself and flatbuffers.
      files.push(...await sourceFiles(path));
    } else if (path.endsWith(".ts")) {
      files.push(path);
    }
  }
  return files;
}

const files = await sourceFiles("");

Deno.test("every room imports only itself and the rooms below it", async () => {
  const climbs: string[] = [];
  for (const file of files) {
    if (file.endsWith("_test.ts") || TOP.some((top) => file.startsWith(top))) continue;
    const from = roomOf(file);
    if (!from) continue;
    const source = await Deno.readTextFile(join(ROOT, file));
    for (const pattern of SPECIFIERS) {
      for (const [, specifier] of source.matchAll(pattern)) {
        if (!specifier!.startsWith(".")) continue; // npm:, node: and the import map's names.
        const target = relative(ROOT, join(ROOT, dirname(file), specifier!));
        const to = roomOf(target);
        if (to?.[0] === from[0]) continue;
        const allowed = from[0] === "plugins/"
          ? PLUGIN_MAY_IMPORT.includes(target)
          : to !== undefined && to[1] < from[1];
        if (!allowed) climbs.push(`${file} imports ${target} (${to?.[0] ?? "no room"})`);
      }
    }
  }
  deepEqual(climbs, [], `imports that climb or cross a wall:\n  ${climbs.join("\n  ")}`);
});

Deno.test("every runner file is in one of the runner's rooms", () => {
  const rooms = ROOMS.map(([room]) => room).filter((room) => room.startsWith("runner/"));
  const loose = files.filter((f) => f.startsWith("runner/") && !rooms.some((r) => f.startsWith(r)));
  deepEqual(
    loose,
    [],
    `put ${loose.join(", ")} in one of ${rooms.join(", ")} (docs/architecture.md)`,
  );
});
