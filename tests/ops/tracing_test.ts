/**
 * Traces through Deno's built-in OpenTelemetry: with OTEL_DENO=true the runner exports one span
 * per RPC with a span per plugin under it, joined to the trace of the request's `traceparent`;
 * without it, nothing is exported. A local OTLP/HTTP (JSON) receiver stands in for a collector.
 */
import { equal, ok } from "node:assert/strict";
import { ApisixConn } from "../support/apisix.ts";
import { startRunner } from "../support/runner.ts";

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes?: Array<{ key: string; value: Record<string, unknown> }>;
  events?: Array<{ name: string }>;
}

function receiver() {
  const spans: OtlpSpan[] = [];
  let requests = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    requests++;
    const body = await request.json().catch(() => ({}));
    for (const resource of body.resourceSpans ?? []) {
      for (const scope of resource.scopeSpans ?? []) spans.push(...scope.spans ?? []);
    }
    return Response.json({});
  });
  return {
    spans,
    requests: () => requests,
    port: server.addr.port,
    close: () => server.shutdown(),
  };
}

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT = "00f067aa0ba902b7";

function otelEnv(port: number, on: boolean): Record<string, string> {
  return {
    ...on ? { OTEL_DENO: "true" } : {},
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_SERVICE_NAME: "a6-runner-test",
    OTEL_DENO_CONSOLE: "ignore",
    OTEL_BSP_SCHEDULE_DELAY: "100",
  };
}

async function call(socket: string): Promise<void> {
  const conn = await ApisixConn.connect(socket);
  const token = await conn.token([["say", '{"body":"traced"}']]);
  const { reply } = await conn.reqCall({
    token,
    headers: [["traceparent", `00-${TRACE}-${PARENT}-01`]],
  }, () => null);
  equal(reply.rpc, 2);
  conn.close();
}

Deno.test("OTEL_DENO=true: a span per RPC, a child span per plugin, in the request's trace", async () => {
  const otlp = receiver();
  const runner = await startRunner({
    config: { bundled: false, plugins: { say: {} } },
    env: otelEnv(otlp.port, true),
  });
  try {
    await runner.waitForLine(/OpenTelemetry traces on/);
    await call(runner.socket);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !otlp.spans.some((s) => s.name === "plugin say")) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const rpc = otlp.spans.find((s) => s.name === "HTTPReqCall");
    const plugin = otlp.spans.find((s) => s.name === "plugin say");
    ok(rpc && plugin, `spans: ${otlp.spans.map((s) => s.name).join(", ")}`);
    equal(rpc.traceId.toLowerCase(), TRACE, "the RPC joins APISIX's trace");
    equal(rpc.parentSpanId?.toLowerCase(), PARENT);
    equal(plugin.traceId, rpc.traceId);
    equal(plugin.parentSpanId, rpc.spanId, "the plugin span is under the RPC span");
    const outcome = plugin.attributes?.find((a) => a.key === "a6.outcome")?.value;
    equal(outcome?.stringValue, "ok");
  } finally {
    await runner.stop();
    await otlp.close();
  }
});

Deno.test("tracing off by default: nothing is exported", async () => {
  const otlp = receiver();
  const runner = await startRunner({
    config: { bundled: false, plugins: { say: {} } },
    env: otelEnv(otlp.port, false),
  });
  try {
    await call(runner.socket);
    await new Promise((resolve) => setTimeout(resolve, 500));
  } finally {
    await runner.stop();
  }
  equal(otlp.requests(), 0);
  ok(!runner.lines.some((line) => /OpenTelemetry/.test(line)));
  await otlp.close();
});
