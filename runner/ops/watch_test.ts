import { deepEqual, equal } from "node:assert/strict";
import { parseConfig } from "../config/config.ts";
import { affectedPlugins, ignoredFile, pluginDirectories } from "./watch.ts";

const config = parseConfig({
  bundled: false,
  plugins: {
    auth: { module: "./plugins/auth.ts" },
    audit: { module: "./plugins/audit.ts" },
    geo: { module: "./plugins/geo/main.ts" },
    say: {},
  },
}, "/srv/a6/runner.json");

Deno.test("a plugin's own file reloads that plugin only; a helper reloads its directory's plugins", () => {
  deepEqual([...affectedPlugins(config, ["/srv/a6/plugins/auth.ts"])], ["auth"]);
  deepEqual(
    [...affectedPlugins(config, ["/srv/a6/plugins/shared/util.ts"])].sort(),
    ["audit", "auth"],
  );
  deepEqual([...affectedPlugins(config, ["/srv/a6/plugins/geo/db.json"])].sort(), [
    "audit",
    "auth",
    "geo",
  ]);
  deepEqual([...affectedPlugins(config, ["/srv/a6/other.ts"])], []);
});

Deno.test("tests, editor backups and node_modules never reload anything", () => {
  for (
    const path of [
      "/p/auth_test.ts",
      "/p/auth.test.js",
      "/p/auth.ts~",
      "/p/.#auth.ts",
      "/p/.auth.ts.swp",
      "/p/node_modules/x/index.js",
    ]
  ) {
    equal(ignoredFile(path), true, path);
  }
  equal(ignoredFile("/p/auth.ts"), false);
  deepEqual([...affectedPlugins(config, ["/srv/a6/plugins/auth_test.ts"])], []);
});

Deno.test("watched directories: one per plugin directory, bundled ones included", () => {
  const dirs = pluginDirectories(config);
  equal(dirs.includes("/srv/a6/plugins"), true);
  equal(dirs.includes("/srv/a6/plugins/geo"), true);
  equal(
    dirs.some((d) => d.endsWith("/plugins") && !d.startsWith("/srv")),
    true,
    "the bundled directory",
  );
});
