/**
 * The runner's metrics in the Prometheus text format (version 0.0.4). The numbers are the ones
 * the call path keeps anyway (per-plugin {@linkcode OutcomeCounters} and {@linkcode Histogram},
 * supervisor restarts); this module only reads them when the endpoint is scraped. Counters of
 * plugin versions retired by a reload are kept here so that totals never go backwards.
 *
 * @module
 */
import denoJson from "../../deno.json" with { type: "json" };
import {
  Histogram,
  LATENCY_BUCKETS_MS,
  OutcomeCounters,
  OUTCOMES,
} from "../telemetry/metrics_core.ts";
import type { Supervisor } from "../sandboxes/supervisor.ts";

/** What a scrape reads from the running runner. */
export interface MetricsSource {
  /** Supervisors of the current plugins and of plugin versions still being retired. */
  supervisors(): Iterable<Supervisor>;
  /** Conf tokens held. */
  confTokens(): number;
  /** Open APISIX connections. */
  connections(): number;
  /** Reloads so far by result. */
  reloads(): { ok: number; failed: number };
}

/** Totals of plugin versions and sandboxes that a reload retired. */
export class RetiredTotals {
  readonly calls = new Map<string, OutcomeCounters>();
  readonly latency = new Map<string, Histogram>();
  readonly restarts = new Map<string, number>();

  /** Adds a retired supervisor's numbers (call once, when it is closed). */
  add(supervisor: Supervisor): void {
    this.restarts.set(
      supervisor.key,
      (this.restarts.get(supervisor.key) ?? 0) + supervisor.restarts,
    );
    for (const host of supervisor.hosts) {
      const name = host.settings.name;
      addCounters(getOr(this.calls, name, () => new OutcomeCounters()), host.counters);
      addHistogram(getOr(this.latency, name, () => new Histogram()), host.latency);
    }
  }
}

function getOr<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let value = map.get(key);
  if (value === undefined) map.set(key, value = make());
  return value;
}

function addCounters(into: OutcomeCounters, from: OutcomeCounters): void {
  for (const outcome of OUTCOMES) into.counts[outcome] += from.counts[outcome];
}

function addHistogram(into: Histogram, from: Histogram): void {
  for (let i = 0; i < into.buckets.length; i++) into.buckets[i]! += from.buckets[i]!;
  into.count += from.count;
  into.sum += from.sum;
}

/** Escapes a label value (backslash, double quote, newline). */
export function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** Formats a number the way Prometheus parses it. */
function num(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

const LE = [...LATENCY_BUCKETS_MS.map((ms) => num(ms / 1000)), "+Inf"];

/** Renders every metric. */
export function renderMetrics(source: MetricsSource, retired: RetiredTotals): string {
  const calls = new Map<string, OutcomeCounters>();
  const latency = new Map<string, Histogram>();
  const restarts = new Map<string, number>(retired.restarts);
  const up = new Map<string, number>();
  const inFlight = new Map<string, number>();
  for (const [name, counters] of retired.calls) {
    addCounters(getOr(calls, name, () => new OutcomeCounters()), counters);
  }
  for (const [name, histogram] of retired.latency) {
    addHistogram(getOr(latency, name, () => new Histogram()), histogram);
  }
  for (const supervisor of source.supervisors()) {
    restarts.set(supervisor.key, (restarts.get(supervisor.key) ?? 0) + supervisor.restarts);
    up.set(supervisor.key, Math.max(up.get(supervisor.key) ?? 0, supervisor.running ? 1 : 0));
    for (const host of supervisor.hosts) {
      const name = host.settings.name;
      addCounters(getOr(calls, name, () => new OutcomeCounters()), host.counters);
      addHistogram(getOr(latency, name, () => new Histogram()), host.latency);
      inFlight.set(name, (inFlight.get(name) ?? 0) + host.busy);
    }
  }

  const lines: string[] = [];
  const head = (name: string, type: string, help: string) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  };
  const plugins = [...calls.keys()].sort();
  const sandboxes = [...restarts.keys()].sort();

  head(
    "a6_plugin_calls_total",
    "counter",
    "Plugin calls (and conf parses that failed) by outcome.",
  );
  for (const plugin of plugins) {
    const counts = calls.get(plugin)!.counts;
    for (const outcome of OUTCOMES) {
      lines.push(
        `a6_plugin_calls_total{plugin="${escapeLabel(plugin)}",outcome="${outcome}"} ${
          counts[outcome]
        }`,
      );
    }
  }

  head(
    "a6_plugin_call_duration_seconds",
    "histogram",
    "Time from a call reaching a plugin's queue to its outcome.",
  );
  for (const plugin of plugins) {
    const histogram = latency.get(plugin)!;
    const label = `plugin="${escapeLabel(plugin)}"`;
    let cumulative = 0;
    for (let i = 0; i < LE.length; i++) {
      cumulative = i < histogram.buckets.length
        ? cumulative + histogram.buckets[i]!
        : histogram.count;
      lines.push(`a6_plugin_call_duration_seconds_bucket{${label},le="${LE[i]}"} ${cumulative}`);
    }
    lines.push(`a6_plugin_call_duration_seconds_sum{${label}} ${num(histogram.sum / 1000)}`);
    lines.push(`a6_plugin_call_duration_seconds_count{${label}} ${histogram.count}`);
  }

  // A value that stays above zero while APISIX is idle means calls that never ended.
  head(
    "a6_plugin_calls_in_flight",
    "gauge",
    "Calls and conf parses a plugin has started or queued and not yet answered.",
  );
  for (const plugin of [...inFlight.keys()].sort()) {
    lines.push(
      `a6_plugin_calls_in_flight{plugin="${escapeLabel(plugin)}"} ${inFlight.get(plugin)}`,
    );
  }

  head(
    "a6_sandbox_restarts_total",
    "counter",
    "Times a plugin sandbox was started again after it ended.",
  );
  for (const key of sandboxes) {
    lines.push(`a6_sandbox_restarts_total{sandbox="${escapeLabel(key)}"} ${restarts.get(key)}`);
  }

  head("a6_sandbox_up", "gauge", "Whether a plugin sandbox is running (they start on first use).");
  for (const key of [...up.keys()].sort()) {
    lines.push(`a6_sandbox_up{sandbox="${escapeLabel(key)}"} ${up.get(key)}`);
  }

  head("a6_conf_tokens", "gauge", "Conf tokens held (routes' plugin conf lists).");
  lines.push(`a6_conf_tokens ${source.confTokens()}`);

  head("a6_connections", "gauge", "Open connections from APISIX.");
  lines.push(`a6_connections ${source.connections()}`);

  const reloads = source.reloads();
  head("a6_reloads_total", "counter", "Reloads of plugins or configuration by result.");
  lines.push(`a6_reloads_total{result="ok"} ${reloads.ok}`);
  lines.push(`a6_reloads_total{result="failed"} ${reloads.failed}`);

  const memory = Deno.memoryUsage();
  head("a6_runner_resident_memory_bytes", "gauge", "Resident memory of the runner process.");
  lines.push(`a6_runner_resident_memory_bytes ${memory.rss}`);

  head("a6_build_info", "gauge", "Versions of the runner and of Deno.");
  lines.push(
    `a6_build_info{version="${escapeLabel(denoJson.version)}",deno="${
      escapeLabel(Deno.version.deno)
    }"} 1`,
  );
  return lines.join("\n") + "\n";
}
