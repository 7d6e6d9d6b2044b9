import { deepEqual, equal, throws } from "node:assert/strict";
import { ConfigError, parseConfig } from "./config.ts";
import { parseSections } from "./sections.ts";

function sections(value: unknown) {
  return parseSections(parseConfig(value, "/etc/a6/runner.json"));
}

Deno.test("sections: defaults when absent", () => {
  deepEqual(sections({}), { log: { levels: {} }, metrics: null, confCache: {} });
});

Deno.test("sections: log, metrics and confCache are read; a relative log file is beside the config", () => {
  deepEqual(
    sections({
      log: {
        level: "debug",
        format: "json",
        file: "logs/runner.log",
        levels: { "a6.plugin.say": "trace" },
      },
      metrics: { port: 9091 },
      confCache: { maxTokens: 500 },
    }),
    {
      log: {
        level: "debug",
        format: "json",
        file: "/etc/a6/logs/runner.log",
        levels: { "a6.plugin.say": "trace" },
      },
      metrics: { port: 9091 },
      confCache: { maxTokens: 500 },
    },
  );
});

Deno.test("sections: every mistake names the file, the key and what was expected", () => {
  const cases: Array<[unknown, string]> = [
    [
      { logs: {} },
      "/etc/a6/runner.json: logs: expected one of the top-level keys bundled, plugins, log, metrics, confCache",
    ],
    [{ log: "debug" }, '/etc/a6/runner.json: log: expected an object, got "debug"'],
    [
      { log: { colour: true } },
      "/etc/a6/runner.json: log.colour: expected one of the keys level, format, file, levels",
    ],
    [
      { log: { format: "text" } },
      '/etc/a6/runner.json: log.format: expected "logfmt" or "json", got "text"',
    ],
    [
      { log: { file: "" } },
      '/etc/a6/runner.json: log.file: expected a file path (relative to the configuration file), got ""',
    ],
    [
      { log: { levels: { "a6.plugin.x": "loud" } } },
      '/etc/a6/runner.json: log.levels.a6.plugin.x: expected one of trace, debug, info, warning, error, fatal, got "loud"',
    ],
    [
      { metrics: {} },
      "/etc/a6/runner.json: metrics.port: expected a TCP port for the endpoint on 127.0.0.1 (0: any free port)",
    ],
    [
      { metrics: { port: 80.5 } },
      "/etc/a6/runner.json: metrics.port: expected an integer from 0 to 65535, got 80.5",
    ],
    [
      { metrics: { port: 1, host: "0.0.0.0" } },
      "/etc/a6/runner.json: metrics.host: expected one of the keys port",
    ],
    [
      { confCache: { maxTokens: 0 } },
      "/etc/a6/runner.json: confCache.maxTokens: expected an integer from 1 to 10000000, got 0",
    ],
  ];
  for (const [value, message] of cases) {
    throws(() => sections(value), (error: unknown) => {
      equal((error as Error).message, message);
      return error instanceof ConfigError;
    });
  }
});
