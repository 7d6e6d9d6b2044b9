/**
 * `deno task gateway`: a local HTTP server that plays APISIX for a routes file, speaking the
 * real ext-plugin protocol to a running runner, so a plugin can be tried with curl in a minute.
 *
 * It is a development tool, not a gateway: no TLS, no load balancing, no health checks, no
 * Lua plugins, loopback only.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { DEV_ADDRESS } from "../runner/ops/cli.ts";
import { getLogger } from "@logtape/logtape";
import { setupLogging } from "../runner/telemetry/log.ts";
import { runRoute } from "./handler.ts";
import { requestState } from "./request_state.ts";
import { loadRoutes, matchRoute, type Route, RoutesError } from "./routes.ts";
import { RunnerClient, TokenCache } from "./runner_client.ts";
import { plainResponse } from "./handler.ts";
import { normalizePath } from "./uri.ts";
import { watchPaths } from "../runner/ops/watch.ts";
import { dirname, resolve } from "node:path";

const DEFAULT_ROUTES = fileURLToPath(new URL("../examples/routes.jsonc", import.meta.url));
/** Largest request body read (the protocol's frame limit). */
const MAX_BODY = 16 * 1024 * 1024 - 64;

const USAGE = `Usage: deno task gateway [options]

A local stand-in for APISIX, for trying plugins: it serves HTTP on 127.0.0.1, runs each
route's ext-plugin-pre-req / post-req / post-resp through the runner over the real protocol,
and proxies to the route's upstream. A development tool, not a gateway.

Options:
  -r, --routes <file>   Routes file (default: examples/routes.jsonc); reloaded when it changes
  -p, --port <n>        Port on 127.0.0.1 (default 9080, APISIX's)
      --runner <addr>   The runner's socket, unix:/path (default: APISIX_LISTEN_ADDRESS, else
                        ${DEV_ADDRESS}, where \`deno task dev\` listens)
      --log-level <l>   debug shows every exchange with the runner (default info)
  -h, --help            Show this help`;

/** Runs the gateway; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        routes: { type: "string", short: "r" },
        port: { type: "string", short: "p" },
        runner: { type: "string" },
        "log-level": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    console.error(`error: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const level = values["log-level"] ?? "info";
  if (!["trace", "debug", "info", "warning", "error"].includes(level)) {
    console.error(`error: --log-level ${level}: expected debug, info, warning or error`);
    return 2;
  }
  setupLogging({ level: level as "info", format: "logfmt", file: null });
  const address = values.runner ?? Deno.env.get("APISIX_LISTEN_ADDRESS") ?? DEV_ADDRESS;
  if (!address.startsWith("unix:/")) {
    console.error(`error: --runner ${address}: expected unix:/absolute/path.sock`);
    return 2;
  }
  const port = Number(values.port ?? "9080");
  if (!/^\d+$/.test(values.port ?? "9080") || port > 65535) {
    console.error(`error: --port ${values.port}: expected a TCP port`);
    return 2;
  }
  const routesFile = resolve(values.routes ?? DEFAULT_ROUTES);
  let routes: Route[];
  try {
    routes = await loadRoutes(routesFile);
  } catch (error) {
    if (!(error instanceof RoutesError)) throw error;
    console.error(`error: ${error.message}`);
    return 2;
  }

  const gatewayLog = getLogger(["a6", "gateway"]);
  const client = new RunnerClient(address.slice("unix:".length));
  const tokens = new TokenCache(client);
  const watcher = watchPaths([dirname(routesFile)], false, async (changed) => {
    if (!changed.some((p) => resolve(p) === routesFile)) return;
    try {
      routes = await loadRoutes(routesFile);
      gatewayLog.info("routes reloaded from {file}: {count} routes", {
        file: routesFile,
        count: routes.length,
      });
    } catch (error) {
      gatewayLog.error("routes not reloaded: {error}; the previous routes stay", {
        error: (error as Error).message,
      });
    }
  });

  const server = Deno.serve({
    hostname: "127.0.0.1",
    port,
    onListen: ({ port }) => {
      gatewayLog.info(
        "local gateway (a development tool, not a gateway) on http://127.0.0.1:{port}, " +
          "{count} routes from {file}, runner at {runner}",
        { port, count: routes.length, file: routesFile, runner: address },
      );
    },
  }, async (request, info) => {
    const started = performance.now();
    const url = new URL(request.url);
    const notes: string[] = [];
    let response: Response;
    const route = matchRoute(routes, normalizePath(url.pathname), request.method);
    if (!route) {
      response = Response.json({ error_msg: "404 Route Not Found" }, { status: 404 });
    } else {
      const body = request.body ? new Uint8Array(await request.arrayBuffer()) : null;
      if (body && body.length > MAX_BODY) {
        response = plainResponse(413);
      } else {
        const remote = info.remoteAddr as Deno.NetAddr;
        const { state, dropped } = requestState(
          request,
          body && body.length ? body : null,
          route,
          { address: remote.hostname, port: remote.port },
          { address: "127.0.0.1", port: server.addr.port },
        );
        if (dropped) notes.push(`${dropped} headers over APISIX's 100 not sent`);
        response = await runRoute(state, {
          client,
          tokens,
          note: (step) => notes.push(step),
          debug: (message) => gatewayLog.debug(message),
        }).catch((error) => {
          gatewayLog.error("request failed: {error}", { error });
          return plainResponse(500);
        });
      }
    }
    gatewayLog.info("{method} {uri} → {status} {route}{notes} ({ms} ms)", {
      method: request.method,
      uri: url.pathname + url.search,
      status: response.status,
      route: route ? `route ${route.id}` : "no route",
      notes: notes.length ? `: ${notes.join(", ")}` : "",
      ms: Math.round(performance.now() - started),
    });
    return response;
  });

  await new Promise<void>((done) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(signal, () => done());
    }
  });
  watcher.close();
  client.close();
  await server.shutdown();
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
