/**
 * The soak's traffic: its routes, their weights and confs, and how often it provokes failures.
 *
 * @module
 */
import type { Entry } from "../../tests/support/apisix.ts";

/** The sleepy plugin's deadline: the soak's slow calls sleep past it. */
export const SLEEPY_TIMEOUT_MS = 500;
/** One slow call this often: at most 3 sandbox kills in any minute, under the crash limit of 5. */
export const SLOW_CALL_EVERY_MS = 20_000;
/** Share of flaky calls asked to throw. */
export const FAIL_SHARE = 0.05;
/** Share of calls whose client vanishes in the middle of an ExtraInfo exchange. */
export const ABANDON_SHARE = 0.002;
/** Requests per connection before it is closed and opened again. */
export const REQUESTS_PER_CONNECTION = 500;
/** How often the runner and its sandboxes are sampled. */
export const SAMPLE_MS = 10_000;
/** How long a client waits for one reply before it counts a timeout. */
export const CALL_TIMEOUT_MS = 10_000;

/** The routes of the mix, one per kind of work. */
export type RouteName =
  | "say"
  | "headers"
  | "body"
  | "vars"
  | "chain"
  | "flaky"
  | "sleepy"
  | "response";

/** A route of the mix: its share of calls, its conf list, and the token APISIX would hold. */
export interface Route {
  name: RouteName;
  weight: number;
  conf: Entry[];
  token: number;
}

/** The mix, by weight. */
export const ROUTES: Omit<Route, "token">[] = [
  { name: "say", weight: 30, conf: [["say", '{"body":"hello"}']] },
  { name: "headers", weight: 12, conf: [["echo", '{"headers":true}']] },
  { name: "body", weight: 12, conf: [["echo", '{"digest":true}']] },
  { name: "vars", weight: 12, conf: [["vars", '{"names":["remote_addr","server_port"]}']] },
  { name: "chain", weight: 8, conf: [["vars", '{"names":["uri"]}'], ["echo", '{"touch":true}']] },
  { name: "flaky", weight: 10, conf: [["flaky", ""]] },
  { name: "sleepy", weight: 8, conf: [["sleepy", '{"sleepMs":0}']] },
  { name: "response", weight: 8, conf: [["echo", '{"digest":true}']] },
];
