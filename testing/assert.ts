/**
 * Assertions that narrow a request outcome to the action a test expects, and say what the
 * plugin did instead when it did something else.
 *
 * @module
 */
import { decodeUtf8 } from "../api/bytes.ts";
import type { NoneOutcome, RequestOutcome, RewriteOutcome, StopOutcome } from "./types.ts";
function describe(outcome: RequestOutcome): string {
  switch (outcome.action) {
    case "stop":
      return `a stop with status ${outcome.status} and body ${JSON.stringify(outcome.text)}`;
    case "rewrite":
      return `a rewrite ${
        JSON.stringify(outcome.wire, (_k, v) => v instanceof Uint8Array ? decodeUtf8(v) : v)
      }`;
    case "none":
      return "no action";
  }
}

/** The error the `assert*` helpers throw. */
class OutcomeError extends Error {
  constructor(expected: string, outcome: RequestOutcome) {
    super(`Expected ${expected}, got ${describe(outcome)}`);
    this.name = "AssertionError";
  }
}

/**
 * Asserts that the plugin answered the client itself, narrowing the outcome's type.
 *
 * @param outcome What {@linkcode PluginUnderTest.request} returned.
 * @throws {Error} An `AssertionError` that describes the actual outcome.
 *
 * @example
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 * import { assertStop, testPlugin } from "@apisix/deno-plugin-runner/testing";
 * import { equal } from "node:assert/strict";
 *
 * const hi = definePlugin({
 *   name: "hi",
 *   requestFilter(_conf, _req, res) {
 *     res.body = "hi";
 *   },
 * });
 * const outcome = await (await testPlugin(hi)).request();
 * assertStop(outcome);
 * equal(outcome.status, 200);
 * equal(outcome.text, "hi");
 * ```
 */
export function assertStop(outcome: RequestOutcome): asserts outcome is StopOutcome {
  if (outcome.action !== "stop") throw new OutcomeError("a stop", outcome);
}

/**
 * Asserts that the request goes upstream with changes, narrowing the outcome's type.
 *
 * @param outcome What {@linkcode PluginUnderTest.request} returned.
 * @throws {Error} An `AssertionError` that describes the actual outcome.
 *
 * @example
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 * import { assertRewrite, testPlugin } from "@apisix/deno-plugin-runner/testing";
 * import { equal } from "node:assert/strict";
 *
 * const move = definePlugin({
 *   name: "move",
 *   requestFilter(_conf, req) {
 *     req.path = "/new?from=old";
 *   },
 * });
 * const outcome = await (await testPlugin(move)).request({ path: "/old" });
 * assertRewrite(outcome);
 * equal(outcome.upstream.path, "/new");
 * equal(outcome.upstream.args.get("from"), "old");
 * ```
 */
export function assertRewrite(outcome: RequestOutcome): asserts outcome is RewriteOutcome {
  if (outcome.action !== "rewrite") throw new OutcomeError("a rewrite", outcome);
}

/**
 * Asserts that the request goes upstream unchanged, narrowing the outcome's type.
 *
 * @param outcome What {@linkcode PluginUnderTest.request} returned.
 * @throws {Error} An `AssertionError` that describes the actual outcome.
 *
 * @example
 * ```ts
 * import { definePlugin } from "@apisix/deno-plugin-runner";
 * import { assertNone, testPlugin } from "@apisix/deno-plugin-runner/testing";
 *
 * const look = definePlugin({
 *   name: "look",
 *   requestFilter(_conf, req) {
 *     console.log(req.method, req.path, req.headers.get("user-agent"));
 *   },
 * });
 * assertNone(await (await testPlugin(look)).request());
 * ```
 */
export function assertNone(outcome: RequestOutcome): asserts outcome is NoneOutcome {
  if (outcome.action !== "none") throw new OutcomeError("no action", outcome);
}
