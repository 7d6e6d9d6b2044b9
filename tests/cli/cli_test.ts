/**
 * The command line as a user meets it: exit codes and messages of every subcommand, `--help`
 * for each, and `check` against good and broken configurations, plugins and confs.
 */
import { equal, match, ok } from "node:assert/strict";
import denoJson from "../../deno.json" with { type: "json" };
import { ROOT, startFlags } from "../support/runner.ts";

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(args: string[], env: Record<string, string> = {}): Promise<Result> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...await startFlags(), `${ROOT}/main.ts`, ...args],
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

async function withFiles(
  files: Record<string, string>,
  body: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "a6-cli-" });
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("version and --help for every command", async () => {
  const version = await cli(["version"]);
  equal(version.code, 0);
  equal(version.stdout.trim(), denoJson.version);
  const help = await cli(["--help"]);
  equal(help.code, 0);
  for (const command of ["run", "dev", "check", "version"]) {
    match(help.stdout, new RegExp(`\\b${command}\\b`));
  }
  for (
    const [command, expected] of [
      ["run", /APISIX_LISTEN_ADDRESS[\s\S]*--config[\s\S]*--log-level[\s\S]*--metrics-port/],
      ["dev", /watches the plugins' source directories/],
      ["check", /--conf <plugin>=<conf>[\s\S]*--plugin <name>/],
      ["version", /Prints the runner's version/],
    ] as const
  ) {
    const result = await cli([command, "--help"]);
    equal(result.code, 0, `${command} --help`);
    match(result.stdout, expected);
  }
});

Deno.test("usage mistakes exit 2 with a message that names the mistake", async () => {
  const none = await cli([]);
  equal(none.code, 2);
  match(none.stdout, /Commands:/);

  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [["serve"], {}, /unknown command "serve"/],
    [["run", "--bogus"], {}, /runner run: Unknown option '--bogus'/],
    [["run", "extra"], {}, /runner run: .*extra/],
    [["run", "--log-level", "loud"], {}, /--log-level loud: expected one of trace, debug, info/],
    [["run"], { A6_LOG_LEVEL: "loud" }, /A6_LOG_LEVEL loud: expected one of/],
    [["run", "--log-format", "xml"], {}, /--log-format xml: expected logfmt or json/],
    [["run", "--metrics-port", "http"], {}, /--metrics-port http: expected a TCP port/],
    [["check", "--conf", "say"], {}, /--conf "say": expected PLUGIN=CONF/],
    [["version", "--verbose"], {}, /runner version: Unknown option '--verbose'/],
  ];
  for (const [args, env, expected] of cases) {
    const result = await cli(args, {
      APISIX_LISTEN_ADDRESS: "unix:/tmp/a6-cli-never.sock",
      ...env,
    });
    equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    match(result.stderr, expected);
  }
});

Deno.test("run: environment and configuration errors exit 2 naming the variable, file and key", async () => {
  const missing = await cli(["run"]);
  equal(missing.code, 2);
  match(missing.stderr, /APISIX_LISTEN_ADDRESS is not set: expected unix:\/absolute\/path\.sock/);
  const tcp = await cli(["run"], { APISIX_LISTEN_ADDRESS: "127.0.0.1:9999" });
  equal(tcp.code, 2);
  match(tcp.stderr, /lacks the "unix:" prefix/);

  await withFiles({
    "bad_top.json": '{"plugin": {}}',
    "bad_metrics.json": '{"metrics": {"port": 70000}}',
    "bad_log.jsonc": '{\n  // a comment is fine\n  "log": {"level": "chatty"},\n}',
    "bad_levels.json": '{"log": {"levels": {"plugin.say": "debug"}}}',
    "bad_plugin.json": '{"plugins": {"mine": {"modul": "./x.ts"}}}',
    "not_json.json": '{"plugins": ',
  }, async (dir) => {
    const expectations: Array<[string, RegExp]> = [
      [
        "bad_top.json",
        /bad_top\.json: plugin: expected one of the top-level keys bundled, plugins, log, metrics, confCache/,
      ],
      [
        "bad_metrics.json",
        /bad_metrics\.json: metrics\.port: expected an integer from 0 to 65535, got 70000/,
      ],
      [
        "bad_log.jsonc",
        /bad_log\.jsonc: log\.level: expected one of trace, debug, info, warning, error, fatal, got "chatty"/,
      ],
      [
        "bad_levels.json",
        /bad_levels\.json: log\.levels\.plugin\.say: expected a category as it appears in log lines/,
      ],
      [
        "bad_plugin.json",
        /bad_plugin\.json: plugins\.mine\.modul: expected one of the keys module, permissions/,
      ],
      ["not_json.json", /not_json\.json: not valid JSON/],
      ["missing.json", /missing\.json: cannot read the configuration/],
    ];
    for (const [file, expected] of expectations) {
      const result = await cli(["run", "--config", `${dir}/${file}`], {
        APISIX_LISTEN_ADDRESS: `unix:${dir}/runner.sock`,
      });
      equal(result.code, 2, `${file}: ${result.stderr}`);
      match(result.stderr, expected);
    }
    // A6_CONFIG names the file when no flag does.
    const viaEnv = await cli(["run"], {
      APISIX_LISTEN_ADDRESS: `unix:${dir}/runner.sock`,
      A6_CONFIG: `${dir}/bad_metrics.json`,
    });
    equal(viaEnv.code, 2);
    match(viaEnv.stderr, /bad_metrics\.json: metrics\.port/);
  });
});

const GOOD = `export default {
  name: "good",
  parseConf(raw) {
    const conf = JSON.parse(raw);
    if (typeof conf.greeting !== "string") throw new TypeError("greeting must be a string");
    return conf;
  },
  requestFilter(conf, _req, res) { res.body = conf.greeting; },
  responseFilter() {},
};
`;

Deno.test("check: loads every plugin, parses sample confs, exits 0 only when all is well", async () => {
  await withFiles({
    "good.ts": GOOD,
    "broken.ts": "export default { name: 'broken', requestFilter( {",
    "misnamed.ts": GOOD.replace('name: "good"', 'name: "other"'),
    "env.ts": GOOD.replace('name: "good"', 'name: "env"'),
    "conf.json": '{"greeting": "from a file"}',
    "ok.jsonc": '{"bundled": false, "plugins": {"good": {"module": "./good.ts"}, "say": {}}}',
    "bad.json": JSON.stringify({
      bundled: false,
      plugins: {
        good: { module: "./good.ts" },
        broken: { module: "./broken.ts" },
        misnamed: { module: "./misnamed.ts" },
        env: { module: "./env.ts", permissions: { env: ["A6_CLI_TEST_UNSET"] } },
      },
    }),
  }, async (dir) => {
    const good = await cli([
      "check",
      "-c",
      `${dir}/ok.jsonc`,
      "--conf",
      'good={"greeting":"hi"}',
      "--conf",
      `good=@${dir}/conf.json`,
      "--conf",
      'say={"body":"x"}',
    ]);
    equal(good.code, 0, good.stdout + good.stderr);
    match(
      good.stdout,
      /ok +plugin +good: loaded in process sandbox plugin:good \(\d+ ms\); requestFilter \+ responseFilter/,
    );
    match(good.stdout, /ok +conf +good \{"greeting":"hi"\}: accepted/);
    match(good.stdout, /ok +conf +good @.*conf\.json: accepted/);
    match(good.stdout, /check passed/);

    const rejected = await cli([
      "check",
      "-c",
      `${dir}/ok.jsonc`,
      "--conf",
      'good={"greeting":1}',
      "--conf",
      "nope={}",
    ]);
    equal(rejected.code, 1);
    match(
      rejected.stdout,
      /error +conf +good \{"greeting":1\}: rejected by parseConf: greeting must be a string/,
    );
    match(
      rejected.stdout,
      /error +conf +nope \{\}: no plugin named nope \(the configuration has: good, say\)/,
    );
    match(rejected.stdout, /check failed: 2 problems/);

    const bad = await cli(["check", "-c", `${dir}/bad.json`]);
    equal(bad.code, 1);
    match(bad.stdout, /ok +plugin +good: loaded/);
    match(
      bad.stdout,
      /error +plugin +broken: sandbox plugin:broken failed to start: .*SyntaxError/,
    );
    match(
      bad.stdout,
      /error +plugin +misnamed: .*the module's plugin is named "other", but the configuration calls it "misnamed"/,
    );
    match(bad.stdout, /warning env +plugin env may read A6_CLI_TEST_UNSET, which is not set/);
    match(bad.stdout, /check failed: 2 problems/);

    // --plugin narrows the check to one plugin.
    const one = await cli(["check", "-c", `${dir}/bad.json`, "--plugin", "good"]);
    equal(one.code, 0, one.stdout);
    ok(!/broken/.test(one.stdout));

    const invalid = await cli(["check", "-c", `${dir}/missing.json`]);
    equal(invalid.code, 1);
    match(invalid.stdout, /error +config +.*missing\.json: cannot read the configuration/);
  });
});

Deno.test("the example configuration is valid and its say plugin loads", async () => {
  const result = await cli([
    "check",
    "-c",
    `${ROOT}/examples/runner.jsonc`,
    "--plugin",
    "say",
    "--conf",
    'say={"body":"hi"}',
  ]);
  equal(result.code, 0, result.stdout + result.stderr);
  match(result.stdout, /ok +plugin +say: loaded/);
  match(result.stdout, /check passed/);
});
