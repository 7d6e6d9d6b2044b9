/**
 * The optional metrics and health endpoint, on 127.0.0.1 only: `GET /metrics` (Prometheus text
 * format 0.0.4) and `GET /health` (JSON). It reads the numbers the call path keeps; it adds no
 * work per call.
 *
 * @module
 */
import denoJson from "../../deno.json" with { type: "json" };
import { log } from "../telemetry/log.ts";
import { type MetricsSource, renderMetrics, type RetiredTotals } from "./metrics_text.ts";

/** What `/health` reports beyond the metrics. */
export interface HealthSource extends MetricsSource {
  /** Whether the runner is shutting down. */
  draining(): boolean;
}

/** Options of {@linkcode startMetricsServer}. */
export interface MetricsServerOptions {
  /** TCP port on 127.0.0.1; 0 picks a free one. */
  port: number;
  /** How long to keep trying while the port is taken (a previous runner still exiting). */
  retryMs?: number;
}

/** A running metrics endpoint. */
export interface MetricsServer {
  /** The port it listens on. */
  port: number;
  /** Stops it. */
  close(): Promise<void>;
}

const started = Date.now();

function handler(source: HealthSource, retired: RetiredTotals) {
  return (request: Request): Response => {
    const { pathname } = new URL(request.url);
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("only GET\n", { status: 405, headers: { allow: "GET, HEAD" } });
    }
    if (pathname === "/metrics") {
      return new Response(renderMetrics(source, retired), {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      });
    }
    if (pathname === "/health") {
      const draining = source.draining();
      const sandboxes = [...source.supervisors()].map((s) => ({
        sandbox: s.key,
        plugins: s.hosts.map((h) => h.settings.name),
        running: s.running,
        pid: s.pid,
        restarts: s.restarts,
      }));
      const body = {
        status: draining ? "draining" : "ok",
        version: denoJson.version,
        pid: Deno.pid,
        uptimeSeconds: Math.round((Date.now() - started) / 1000),
        connections: source.connections(),
        confTokens: source.confTokens(),
        sandboxes,
      };
      return Response.json(body, { status: draining ? 503 : 200 });
    }
    return new Response("not found: try /metrics or /health\n", { status: 404 });
  };
}

/**
 * Starts the endpoint on 127.0.0.1. While the port is taken it retries for `retryMs` (APISIX
 * starts the new runner before the old one has exited), then gives up with an error log: the
 * runner keeps serving APISIX without metrics.
 */
export async function startMetricsServer(
  options: MetricsServerOptions,
  source: HealthSource,
  retired: RetiredTotals,
): Promise<MetricsServer | null> {
  const deadline = Date.now() + (options.retryMs ?? 5000);
  for (;;) {
    try {
      const server = Deno.serve({
        hostname: "127.0.0.1",
        port: options.port,
        onListen: () => {},
        onError: (error) => {
          log.runner.error("metrics endpoint failed: {error}", { error });
          return new Response("internal error\n", { status: 500 });
        },
      }, handler(source, retired));
      const port = server.addr.port;
      log.runner.info("metrics on http://127.0.0.1:{port}/metrics (health: /health)", { port });
      return { port, close: () => server.shutdown() };
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse) || Date.now() > deadline) {
        log.runner.error(
          "metrics endpoint not started on 127.0.0.1:{port}: {reason}; serving APISIX without it",
          { port: options.port, reason: (error as Error).message },
        );
        return null;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}
