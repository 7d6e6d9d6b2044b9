/**
 * Traces through Deno's built-in OpenTelemetry, when the runner starts with `OTEL_DENO=true`:
 * one span per HTTPReqCall / HTTPRespCall that runs plugins, with one child span per plugin.
 * When APISIX's opentelemetry plugin ran first, the request carries a `traceparent` header and
 * the runner's span joins that trace.
 *
 * Off by default, and free when off: `@opentelemetry/api` is not even loaded, and the call path
 * only tests {@linkcode tracing}`.rpc` for null.
 *
 * @module
 */
import type { Attributes, Span, Tracer } from "@opentelemetry/api";
import denoJson from "../../deno.json" with { type: "json" };
import type { HttpReqCallReq } from "../../protocol/gen/http_req_call_req.ts";
import { TextEntry } from "../../protocol/gen/text_entry.ts";

/** The span of one RPC. */
export interface RpcSpan {
  /** Starts the span of one plugin's part of the call. */
  plugin(name: string): PluginSpan;
  /** Records an ExtraInfo question asked of APISIX. */
  ask(info: string, name: string): void;
  /** Ends the span; `outcome` is "ok" or a failure cause. */
  end(outcome: string): void;
}

/** The span of one plugin's part of an RPC. */
export interface PluginSpan {
  /** Ends the span; `outcome` is "ok" or a failure cause. */
  end(outcome: string): void;
}

/** Starts the span of one RPC: its kind, route key, conf token and request (HTTPReqCall). */
export type StartRpcSpan = (
  kind: string,
  route: string,
  token: number,
  request: HttpReqCallReq | null,
) => RpcSpan;

/** The tracing hook of the call path: null unless tracing is on. */
export const tracing: { rpc: StartRpcSpan | null } = { rpc: null };

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The request's `traceparent` header, if any (only read when tracing is on). */
function traceparentOf(request: HttpReqCallReq | null): string | null {
  if (!request) return null;
  const entry = new TextEntry();
  for (let i = 0; i < request.headersLength(); i++) {
    request.headers(i, entry);
    if (entry.name() === "traceparent") return entry.value();
  }
  return null;
}

/**
 * Turns tracing on when `OTEL_DENO` is `true` (Deno then exports over OTLP as configured by
 * the standard `OTEL_EXPORTER_OTLP_*` variables). Returns whether it did.
 */
export async function setupTracing(): Promise<boolean> {
  if (Deno.env.get("OTEL_DENO") !== "true") return false;
  const api = await import("@opentelemetry/api");
  const tracer: Tracer = api.trace.getTracer("apisix-deno-plugin-runner", denoJson.version);
  const finish = (span: Span, outcome: string) => {
    span.setAttribute("a6.outcome", outcome);
    if (outcome !== "ok") span.setStatus({ code: api.SpanStatusCode.ERROR, message: outcome });
    span.end();
  };
  tracing.rpc = (kind, route, token, request) => {
    let parent = api.context.active();
    const header = traceparentOf(request);
    const match = header ? TRACEPARENT.exec(header.trim().toLowerCase()) : null;
    if (match) {
      parent = api.trace.setSpanContext(parent, {
        traceId: match[1]!,
        spanId: match[2]!,
        traceFlags: parseInt(match[3]!, 16),
        isRemote: true,
      });
    }
    const attributes: Attributes = { "a6.route": route, "a6.conf_token": token };
    const span = tracer.startSpan(kind, { kind: api.SpanKind.SERVER, attributes }, parent);
    const context = api.trace.setSpan(parent, span);
    return {
      plugin(name) {
        const child = tracer.startSpan(`plugin ${name}`, {
          kind: api.SpanKind.INTERNAL,
          attributes: { "a6.plugin": name },
        }, context);
        return { end: (outcome) => finish(child, outcome) };
      },
      ask(info, name) {
        span.addEvent(
          "ExtraInfo",
          name ? { "a6.info": info, "a6.var": name } : { "a6.info": info },
        );
      },
      end: (outcome) => finish(span, outcome),
    };
  };
  return true;
}
