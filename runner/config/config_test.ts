import { deepEqual, equal, match, ok, rejects, throws } from "node:assert/strict";
import { pathToFileURL } from "node:url";
import {
  BUNDLED_PLUGINS,
  ConfigError,
  defaultConfig,
  loadConfig,
  parseConfig,
  PLUGIN_DEFAULTS,
} from "./config.ts";

const FILE = "/etc/a6/runner.json";

/** The ConfigError message `value` gets, which must name the file. */
function error(value: unknown): string {
  let message = "";
  throws(() => parseConfig(value, FILE), (e: unknown) => {
    ok(e instanceof ConfigError, String(e));
    message = (e as Error).message;
    return true;
  });
  ok(message.startsWith(`${FILE}: `), message);
  return message;
}

function plugin(entry: Record<string, unknown>) {
  return { bundled: false, plugins: { mine: { module: "./mine.ts", ...entry } } };
}

Deno.test("defaults are safe: no permissions, own process, a deadline well under 60 s", () => {
  const config = defaultConfig();
  deepEqual([...config.plugins.keys()].sort(), Object.keys(BUNDLED_PLUGINS).sort());
  for (const settings of config.plugins.values()) {
    deepEqual(settings.permissions, { read: [], write: [], net: [], env: [], sys: [], import: [] });
    equal(settings.isolation, "process");
    equal(settings.sandbox, `plugin:${settings.name}`);
    equal(settings.failure, "closed");
    ok(settings.timeoutMs <= 30_000, "well under APISIX's 60 s");
    equal(settings.timeoutMs, PLUGIN_DEFAULTS.timeoutMs);
    equal(settings.memoryMb, PLUGIN_DEFAULTS.memoryMb);
    ok(settings.concurrency >= 1);
    ok(settings.bundled);
  }
});

Deno.test("a plugin entry: module and paths relative to the file, every setting", () => {
  const config = parseConfig({
    bundled: false,
    plugins: {
      mine: {
        module: "./plugins/mine.ts",
        permissions: {
          read: ["data", "/srv/shared"],
          write: ["out"],
          net: ["api.example.com:443"],
          env: ["MINE_TOKEN"],
          sys: ["hostname"],
          import: ["cdn.example.com"],
        },
        isolation: "shared",
        group: "team-a",
        timeoutMs: 250,
        memoryMb: 64,
        concurrency: 8,
        failure: "open",
        logLinesPerSecond: 5,
      },
      say: {},
      quick: { module: "file:///opt/plugins/quick.ts", isolation: "inline" },
    },
  }, FILE);
  deepEqual([...config.plugins.keys()], ["mine", "say", "quick"]);
  const mine = config.plugins.get("mine")!;
  equal(mine.module, pathToFileURL("/etc/a6/plugins/mine.ts").href);
  equal(mine.bundled, false);
  deepEqual(mine.permissions, {
    read: ["/etc/a6/data", "/srv/shared"],
    write: ["/etc/a6/out"],
    net: ["api.example.com:443"],
    env: ["MINE_TOKEN"],
    sys: ["hostname"],
    import: ["cdn.example.com"],
  });
  equal(mine.sandbox, "group:team-a");
  equal(mine.timeoutMs, 250);
  equal(mine.memoryMb, 64);
  equal(mine.concurrency, 8);
  equal(mine.failure, "open");
  equal(mine.logLinesPerSecond, 5);
  ok(config.plugins.get("say")!.bundled);
  equal(config.plugins.get("quick")!.sandbox, "inline:quick");
  equal(config.plugins.get("quick")!.module, "file:///opt/plugins/quick.ts");
});

Deno.test("the bundled plugins stay unless bundled is false; other sections pass through", () => {
  const config = parseConfig(
    { log: { level: "debug" }, plugins: { say: { timeoutMs: 100 } } },
    FILE,
  );
  equal(config.plugins.size, Object.keys(BUNDLED_PLUGINS).length);
  equal(config.plugins.get("say")!.timeoutMs, 100);
  deepEqual(config.sections, { log: { level: "debug" } });
  equal(parseConfig({ bundled: false }, FILE).plugins.size, 0);
});

Deno.test("run and ffi are refused for sandboxed plugins, with the reason", () => {
  match(
    error(plugin({ permissions: { run: ["/bin/sh"] } })),
    /plugins\.mine\.permissions\.run: .*may not start processes or load native code/,
  );
  match(error(plugin({ permissions: { ffi: true } })), /plugins\.mine\.permissions\.ffi: /);
});

Deno.test("an inline plugin takes no grants: it would have the runner's permissions anyway", () => {
  const message = error(plugin({ isolation: "inline", permissions: { net: ["example.com:443"] } }));
  match(message, /plugins\.mine\.permissions: expected no grants for an inline plugin/);
  match(message, /example\.com:443/);
  equal(
    parseConfig(plugin({ isolation: "inline" }), FILE).plugins.get("mine")!.isolation,
    "inline",
  );
});

Deno.test("every mistake names the file, the key and what was expected", () => {
  const cases: Array<[unknown, RegExp]> = [
    [[], /\(top level\): expected an object/],
    [{ bundled: "yes" }, /bundled: expected true or false, got "yes"/],
    [{ plugins: [] }, /plugins: expected an object/],
    [{ plugins: { "bad name!": {} } }, /plugins\.bad name!: expected a plugin name/],
    [{ plugins: { mine: "x" } }, /plugins\.mine: expected an object, got "x"/],
    [
      { plugins: { mine: {} } },
      /plugins\.mine\.module: expected a module path \(there is no bundled/,
    ],
    [plugin({ module: "" }), /plugins\.mine\.module: expected a bundled plugin name/],
    [
      plugin({ module: "https://example.com/p.ts" }),
      /plugins\.mine\.module: .*remote modules are not loaded/,
    ],
    [plugin({ module: "npm:left-pad" }), /plugins\.mine\.module: /],
    [plugin({ colour: "blue" }), /plugins\.mine\.colour: expected one of the keys module, /],
    [
      plugin({ permissions: { disk: [] } }),
      /plugins\.mine\.permissions\.disk: expected one of the keys read, /,
    ],
    [
      plugin({ permissions: { read: "/etc" } }),
      /plugins\.mine\.permissions\.read: expected a list of non-empty strings/,
    ],
    [plugin({ permissions: { net: [""] } }), /plugins\.mine\.permissions\.net: expected a list/],
    [plugin({ permissions: { env: true } }), /plugins\.mine\.permissions\.env: expected a list/],
    // A comma would split the entry in the sandbox's --allow-read flag: "/data,/etc" is two.
    [plugin({ permissions: { read: ["/data,/etc"] } }), /permissions\.read: .*without commas/],
    [
      plugin({ permissions: { sys: ["everything"] } }),
      /permissions\.sys: expected names from hostname, .*got "everything"/,
    ],
    [
      plugin({ isolation: "thread" }),
      /plugins\.mine\.isolation: expected one of "process", "shared", "inline", got "thread"/,
    ],
    [plugin({ isolation: "shared" }), /plugins\.mine\.group: expected a group name/],
    [plugin({ isolation: "shared", group: "a b" }), /plugins\.mine\.group: expected a group name/],
    [
      plugin({ group: "g" }),
      /plugins\.mine\.group: expected no group unless isolation is "shared"/,
    ],
    [
      plugin({ timeoutMs: 0 }),
      /plugins\.mine\.timeoutMs: expected an integer from 1 to 55000, got 0/,
    ],
    [
      plugin({ timeoutMs: 60_000 }),
      /plugins\.mine\.timeoutMs: expected an integer from 1 to 55000/,
    ],
    [plugin({ timeoutMs: 1.5 }), /plugins\.mine\.timeoutMs: /],
    [plugin({ timeoutMs: "100" }), /plugins\.mine\.timeoutMs: .*got "100"/],
    [plugin({ memoryMb: 16 }), /plugins\.mine\.memoryMb: expected an integer from 32 to /],
    [plugin({ concurrency: 0 }), /plugins\.mine\.concurrency: expected an integer from 1 to /],
    [
      plugin({ failure: "maybe" }),
      /plugins\.mine\.failure: expected one of "closed", "open", got "maybe"/,
    ],
    [plugin({ logLinesPerSecond: -1 }), /plugins\.mine\.logLinesPerSecond: /],
    [
      plugin({ logBytesPerSecond: 1e9 }),
      /plugins\.mine\.logBytesPerSecond: expected an integer from 0 to 67108864/,
    ],
    [
      plugin({ maxQuestionsPerCall: 100_000 }),
      /plugins\.mine\.maxQuestionsPerCall: expected an integer from 0 to 65536/,
    ],
  ];
  for (const [value, expected] of cases) match(error(value), expected);
});

Deno.test("loadConfig: an unreadable file and bad JSON are ConfigErrors naming the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await rejects(loadConfig(`${dir}/missing.json`), (e: unknown) => {
      ok(e instanceof ConfigError);
      match((e as Error).message, /missing\.json: cannot read the configuration/);
      return true;
    });
    await Deno.writeTextFile(`${dir}/bad.json`, "{ plugins: }");
    await rejects(loadConfig(`${dir}/bad.json`), /bad\.json: not valid JSON/);
    await Deno.writeTextFile(
      `${dir}/ok.json`,
      JSON.stringify({ bundled: false, plugins: { p: { module: "p.ts" } } }),
    );
    const config = await loadConfig(`${dir}/ok.json`);
    equal(config.plugins.get("p")!.module, pathToFileURL(`${dir}/p.ts`).href);
    equal(config.file, `${dir}/ok.json`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the log byte budget and the question limit have defaults and can be set", () => {
  const config = parseConfig({
    bundled: false,
    plugins: {
      set: { module: "set.ts", logBytesPerSecond: 8192, maxQuestionsPerCall: 4 },
      unset: { module: "unset.ts" },
    },
  }, "/etc/runner.json");
  equal(config.plugins.get("set")!.logBytesPerSecond, 8192);
  equal(config.plugins.get("set")!.maxQuestionsPerCall, 4);
  equal(config.plugins.get("unset")!.logBytesPerSecond, 256 * 1024);
  equal(config.plugins.get("unset")!.maxQuestionsPerCall, 256);
});
