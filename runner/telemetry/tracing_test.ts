import { equal } from "node:assert/strict";
import { setupTracing, tracing } from "./tracing.ts";

Deno.test("tracing is off without OTEL_DENO=true: no span hook on the call path", async () => {
  if (Deno.env.get("OTEL_DENO") === "true") return;
  equal(await setupTracing(), false);
  equal(tracing.rpc, null);
});
