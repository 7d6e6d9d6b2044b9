/**
 * The metrics endpoint, scraped over HTTP from a real runner: per-plugin calls by outcome,
 * latency histograms, sandbox restarts, tokens and connections, totals that survive a reload;
 * and the health endpoint.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { ApisixConn } from "../support/apisix.ts";
import { startRunner } from "../support/runner.ts";

/** Parses the text format into `name{labels}` → value. */
function parseMetrics(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    values.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return values;
}

async function scrape(port: number): Promise<Map<string, number>> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  equal(response.status, 200);
  equal(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  return parseMetrics(await response.text());
}

const SPIN = `export default {
  name: "spin",
  requestFilter() { for (;;) {} },
};
`;
const THROW = `export default {
  name: "boom",
  requestFilter() { throw new Error("boom"); },
};
`;

Deno.test("metrics: calls by outcome, latency, restarts, tokens, connections, reload totals; health", async () => {
  const dir = await Deno.makeTempDir({ prefix: "a6-metrics-" });
  await Deno.writeTextFile(`${dir}/spin.ts`, SPIN);
  await Deno.writeTextFile(`${dir}/boom.ts`, THROW);
  const runner = await startRunner({
    config: {
      bundled: false,
      plugins: {
        say: {},
        spin: { module: `${dir}/spin.ts`, timeoutMs: 300 },
        boom: { module: `${dir}/boom.ts` },
      },
      metrics: { port: 0 },
    },
  });
  try {
    const line = await runner.waitForLine(/metrics on http:\/\/127\.0\.0\.1:\d+/);
    const port = Number(/127\.0\.0\.1:(\d+)/.exec(line)![1]);

    const before = await scrape(port);
    equal(before.get('a6_plugin_calls_total{plugin="say",outcome="ok"}'), 0);
    equal(before.get("a6_connections"), 0);

    const conn = await ApisixConn.connect(runner.socket);
    const idle = await ApisixConn.connect(runner.socket);
    const say = await conn.token([["say", '{"body":"hi"}']]);
    const boom = await conn.token([["boom", "{}"]]);
    const spin = await conn.token([["spin", "{}"]]);
    await conn.token([["say", '{"no body":1}']]); // rejected by parseConf: bad_conf
    for (let i = 0; i < 3; i++) equal((await conn.reqCall({ token: say })).reply.rpc, 2);
    for (let i = 0; i < 2; i++) {
      deepEqual((await conn.reqCall({ token: boom })).reply, { rpc: 0, code: 1 });
    }
    const conn2 = await ApisixConn.connect(runner.socket);
    deepEqual((await conn2.reqCall({ token: spin })).reply, { rpc: 0, code: 1 });
    // The looping sandbox is killed and started again.
    await runner.waitForLine(/sandbox plugin:spin ready/);
    const deadline = Date.now() + 10_000;
    let after = await scrape(port);
    while (
      after.get('a6_sandbox_restarts_total{sandbox="plugin:spin"}') === 0 && Date.now() < deadline
    ) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      after = await scrape(port);
    }

    equal(after.get('a6_plugin_calls_total{plugin="say",outcome="ok"}'), 3);
    equal(after.get('a6_plugin_calls_total{plugin="say",outcome="bad_conf"}'), 1);
    equal(after.get('a6_plugin_calls_total{plugin="boom",outcome="error"}'), 2);
    equal(after.get('a6_plugin_calls_total{plugin="spin",outcome="timeout"}'), 1);
    ok(after.get('a6_sandbox_restarts_total{sandbox="plugin:spin"}')! >= 1);
    equal(after.get('a6_sandbox_up{sandbox="plugin:say"}'), 1);
    // Every call was answered: nothing is left in flight, timed-out and failed calls included.
    equal(after.get('a6_plugin_calls_in_flight{plugin="say"}'), 0);
    equal(after.get('a6_plugin_calls_in_flight{plugin="spin"}'), 0);
    equal(after.get('a6_plugin_calls_in_flight{plugin="boom"}'), 0);
    equal(after.get("a6_conf_tokens"), 4);
    equal(after.get("a6_connections"), 3);

    // The histogram: cumulative buckets ending in +Inf = count, sum in seconds.
    const count = after.get('a6_plugin_call_duration_seconds_count{plugin="say"}')!;
    equal(count, 3);
    equal(after.get('a6_plugin_call_duration_seconds_bucket{plugin="say",le="+Inf"}'), 3);
    const buckets = [...after].filter(([k]) =>
      k.startsWith('a6_plugin_call_duration_seconds_bucket{plugin="say"')
    );
    ok(buckets.length === 17, `17 buckets, got ${buckets.length}`);
    for (let i = 1; i < buckets.length; i++) ok(buckets[i]![1] >= buckets[i - 1]![1], "cumulative");
    const sum = after.get('a6_plugin_call_duration_seconds_sum{plugin="say"}')!;
    ok(sum > 0 && sum < 30, `sum ${sum} s`);
    // The spin call waited for its 300 ms deadline.
    ok(after.get('a6_plugin_call_duration_seconds_sum{plugin="spin"}')! >= 0.29);

    // A reload replaces every sandbox; the totals keep counting from where they were.
    runner.process.kill("SIGHUP");
    await runner.waitForLine(/reloaded \(SIGHUP\)/);
    equal((await conn.reqCall({ token: say })).reply.rpc, 2);
    const reloaded = await scrape(port);
    equal(reloaded.get('a6_plugin_calls_total{plugin="say",outcome="ok"}'), 4);
    equal(reloaded.get('a6_plugin_calls_total{plugin="boom",outcome="error"}'), 2);
    equal(reloaded.get('a6_plugin_call_duration_seconds_count{plugin="say"}'), 4);
    equal(reloaded.get('a6_reloads_total{result="ok"}'), 1);
    ok(reloaded.get('a6_sandbox_restarts_total{sandbox="plugin:spin"}')! >= 1);

    const health = await fetch(`http://127.0.0.1:${port}/health`);
    equal(health.status, 200);
    const report = await health.json();
    equal(report.status, "ok");
    equal(report.connections, 3);
    ok(
      report.sandboxes.some((s: { sandbox: string; running: boolean }) =>
        s.sandbox === "plugin:say" && s.running
      ),
    );
    equal(
      await fetch(`http://127.0.0.1:${port}/nope`).then(async (
        r,
      ) => (await r.body?.cancel(), r.status)),
      404,
    );
    conn.close();
    conn2.close();
    idle.close();
  } finally {
    await runner.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("metrics port from A6_METRICS_PORT; nothing listens without it", async () => {
  const runner = await startRunner({ env: { A6_METRICS_PORT: "0" } });
  try {
    const line = await runner.waitForLine(/metrics on http:\/\/127\.0\.0\.1:\d+/);
    const port = Number(/127\.0\.0\.1:(\d+)/.exec(line)![1]);
    const metrics = await scrape(port);
    equal(metrics.get("a6_conf_tokens"), 0);
  } finally {
    await runner.stop();
  }
  const quiet = await startRunner();
  try {
    await new Promise((resolve) => setTimeout(resolve, 200));
    ok(!quiet.lines.some((line) => /metrics on/.test(line)));
  } finally {
    await quiet.stop();
  }
});
