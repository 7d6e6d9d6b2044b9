import { equal, match } from "node:assert/strict";
import { parseConfig } from "../config/config.ts";
import { escapeLabel, renderMetrics, RetiredTotals } from "./metrics_text.ts";
import { PluginRegistry } from "../sandboxes/plugin_registry.ts";

Deno.test("escapeLabel escapes backslash, quote and newline", () => {
  equal(escapeLabel('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
});

Deno.test("renderMetrics: every family with HELP and TYPE; retired totals are added", () => {
  const registry = new PluginRegistry(
    parseConfig({ bundled: false, plugins: { say: {} } }, "x.json"),
  );
  const host = registry.host("say")!;
  host.counters.add("ok");
  host.counters.add("timeout");
  host.latency.observe(0.3);
  host.latency.observe(20_000);
  const retired = new RetiredTotals();
  const old = new PluginRegistry(parseConfig({ bundled: false, plugins: { say: {} } }, "x.json"));
  old.host("say")!.counters.add("ok");
  old.host("say")!.latency.observe(3);
  old.supervisors[0]!.restarts = 2;
  retired.add(old.supervisors[0]!);
  const text = renderMetrics({
    supervisors: () => registry.supervisors,
    confTokens: () => 7,
    connections: () => 3,
    reloads: () => ({ ok: 1, failed: 2 }),
  }, retired);
  for (
    const family of [
      "a6_plugin_calls_total",
      "a6_plugin_call_duration_seconds",
      "a6_plugin_calls_in_flight",
      "a6_sandbox_restarts_total",
      "a6_conf_tokens",
      "a6_connections",
    ]
  ) {
    match(text, new RegExp(`# HELP ${family} .+\\n# TYPE ${family} (counter|gauge|histogram)\\n`));
  }
  match(text, /a6_plugin_calls_total\{plugin="say",outcome="ok"\} 2\n/);
  match(text, /a6_plugin_calls_total\{plugin="say",outcome="timeout"\} 1\n/);
  match(text, /a6_plugin_call_duration_seconds_bucket\{plugin="say",le="0.0005"\} 1\n/);
  match(text, /a6_plugin_call_duration_seconds_bucket\{plugin="say",le="0.005"\} 2\n/);
  match(text, /a6_plugin_call_duration_seconds_bucket\{plugin="say",le="10"\} 2\n/);
  match(text, /a6_plugin_call_duration_seconds_bucket\{plugin="say",le="\+Inf"\} 3\n/);
  match(text, /a6_plugin_call_duration_seconds_count\{plugin="say"\} 3\n/);
  match(text, /a6_plugin_call_duration_seconds_sum\{plugin="say"\} 20\.0033\n/);
  match(text, /a6_sandbox_restarts_total\{sandbox="plugin:say"\} 2\n/);
  match(text, /a6_sandbox_up\{sandbox="plugin:say"\} 0\n/);
  match(text, /a6_plugin_calls_in_flight\{plugin="say"\} 0\n/);
  match(text, /a6_conf_tokens 7\n/);
  match(text, /a6_connections 3\n/);
  match(text, /a6_reloads_total\{result="failed"\} 2\n/);
  equal(text.endsWith("\n"), true);
});
