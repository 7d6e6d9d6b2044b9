/**
 * The local gateway end to end: curl-like requests to the gateway, which speaks the real
 * protocol to a real runner and proxies to a local upstream. Rewrites reach the upstream, a
 * Stop never does, post-resp changes what the client gets, failures are 503 or degrade, and a
 * restarted runner's unknown tokens are refreshed the way APISIX does.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { ROOT, startRunner } from "../support/runner.ts";

const PLUGINS: Record<string, string> = {
  "rewriter.ts": `export default {
  name: "rewriter",
  async requestFilter(conf, req, res) {
    req.path = conf.path;
    req.headers.set("x-added", "yes");
    req.headers.delete("x-remove");
    req.args.delete("d");
    req.args.set("a", "1");
    req.args.append("a", "2");
    req.headers.set("x-remote", (await req.var("remote_addr")) ?? "none");
    req.headers.set("x-route", (await req.var("route_id")) ?? "none");
    const body = await req.text();
    if (body) req.setBody(body.toUpperCase());
    res.headers.set("x-resp", "from-rewriter");
  },
};
`,
  "stopper.ts": `export default {
  name: "stopper",
  requestFilter(_conf, _req, res) {
    res.status = 403;
    res.headers.append("x-stop", "1");
    res.headers.append("x-stop", "2");
    res.body = "no";
  },
};
`,
  "post.ts": `export default {
  name: "post",
  async responseFilter(_conf, res) {
    const text = await res.text();
    res.status = 201;
    res.headers.set("x-post", res.headers.get("x-up") ?? "none");
    res.setBody(text.toUpperCase());
  },
};
`,
  "thrower.ts": `export default {
  name: "thrower",
  requestFilter() { throw new Error("thrown on purpose"); },
};
`,
};

interface Seen {
  method: string;
  url: string;
  headers: Headers;
  body: string;
}

function upstream() {
  const seen: Seen[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    seen.push({
      method: request.method,
      url: request.url,
      headers: request.headers,
      body: await request.text(),
    });
    const headers = new Headers({ "content-type": "text/plain", "x-up": "U" });
    headers.append("set-cookie", "a=1");
    headers.append("set-cookie", "b=2");
    return new Response("hello upstream", { headers });
  });
  return { seen, port: server.addr.port, close: () => server.shutdown() };
}

async function startGateway(routes: string, socket: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--cached-only",
      "--allow-read",
      "--allow-write",
      "--allow-net",
      "--allow-env",
      `${ROOT}/gateway/main.ts`,
      "--routes",
      routes,
      "--port",
      "0",
      "--runner",
      `unix:${socket}`,
      "--log-level",
      "debug",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  let resolvePort!: (port: number) => void;
  const port = new Promise<number>((resolve) => resolvePort = resolve);
  const read = (async () => {
    let partial = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        const m = /on http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
        if (m) resolvePort(Number(m[1]));
      }
    }
  })();
  const timer = setTimeout(() => resolvePort(0), 20_000);
  const gatewayPort = await port;
  clearTimeout(timer);
  if (!gatewayPort) throw new Error(`the gateway did not start:\n${lines.join("\n")}`);
  return {
    port: gatewayPort,
    lines,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await child.stdout.cancel();
      await read;
    },
  };
}

Deno.test("the local gateway plays APISIX: pre-req rewrite and stop, post-resp, failures, degradation, token refresh", async () => {
  const dir = await Deno.makeTempDir({ prefix: "a6-gateway-" });
  for (const [name, text] of Object.entries(PLUGINS)) {
    await Deno.writeTextFile(`${dir}/${name}`, text);
  }
  const up = upstream();
  const base = `http://127.0.0.1:${up.port}`;
  const plugin = (name: string, value: unknown = {}) => ({ conf: [{ name, value }] });
  await Deno.writeTextFile(
    `${dir}/routes.jsonc`,
    JSON.stringify({
      routes: [
        {
          id: "rw",
          uri: "/rw",
          upstream: base,
          plugins: { "ext-plugin-pre-req": plugin("rewriter", { path: "/new path" }) },
        },
        {
          id: "stop",
          uri: "/stop/*",
          upstream: base,
          plugins: { "ext-plugin-pre-req": plugin("stopper") },
        },
        {
          id: "post",
          uri: "/post",
          upstream: base,
          plugins: { "ext-plugin-post-resp": plugin("post") },
        },
        {
          id: "fail",
          uri: "/fail",
          upstream: base,
          plugins: { "ext-plugin-pre-req": plugin("thrower") },
        },
        {
          id: "soft",
          uri: "/soft",
          upstream: base,
          plugins: { "ext-plugin-pre-req": { ...plugin("thrower"), allow_degradation: true } },
        },
        {
          id: "dead",
          uri: "/dead",
          upstream: "http://127.0.0.1:9",
          plugins: { "ext-plugin-post-resp": plugin("post") },
        },
        {
          id: "echo",
          uri: "/echo",
          upstream: "echo",
          plugins: { "ext-plugin-pre-req": plugin("rewriter", { path: "/e" }) },
        },
      ],
    }),
  );
  const config = {
    bundled: false,
    plugins: Object.fromEntries(
      Object.keys(PLUGINS).map((file) => [file.slice(0, -3), { module: `${dir}/${file}` }]),
    ),
  };
  let runner = await startRunner({ config });
  const gateway = await startGateway(`${dir}/routes.jsonc`, runner.socket);
  const url = (path: string) => `http://127.0.0.1:${gateway.port}${path}`;
  try {
    // pre-req Rewrite: path, headers, args and body reach the upstream; resp_headers reach us.
    const rw = await fetch(url("/rw?c=keep&d=drop&a=0"), {
      method: "POST",
      headers: { "x-remove": "gone", "x-keep": "kept" },
      body: "shout",
    });
    equal(rw.status, 200);
    equal(await rw.text(), "hello upstream");
    equal(rw.headers.get("x-resp"), "from-rewriter");
    equal(rw.headers.get("x-up"), "U");
    deepEqual(rw.headers.getSetCookie(), ["a=1", "b=2"]);
    const got = up.seen.at(-1)!;
    equal(got.method, "POST");
    const target = new URL(got.url);
    equal(target.pathname, "/new%20path");
    deepEqual(target.searchParams.getAll("a"), ["1", "2"]);
    equal(target.searchParams.get("c"), "keep");
    equal(target.searchParams.has("d"), false);
    equal(got.headers.get("x-added"), "yes");
    equal(got.headers.get("x-keep"), "kept");
    equal(got.headers.has("x-remove"), false);
    equal(got.headers.get("x-remote"), "127.0.0.1");
    equal(got.headers.get("x-route"), "rw");
    equal(got.body, "SHOUT");

    // pre-req Stop: the client gets it, the upstream never sees the request.
    const before = up.seen.length;
    const stop = await fetch(url("/stop/anything"));
    equal(stop.status, 403);
    equal(stop.headers.get("x-stop"), "1, 2");
    equal(await stop.text(), "no");
    equal(up.seen.length, before);

    // post-resp: status, headers and body from the plugin; upstream headers kept.
    const post = await fetch(url("/post"));
    equal(post.status, 201);
    equal(await post.text(), "HELLO UPSTREAM");
    equal(post.headers.get("x-post"), "U");
    equal(post.headers.get("content-type"), "text/plain");

    // A plugin that throws: 503, or with allow_degradation the upstream answers.
    const fail = await fetch(url("/fail"));
    equal(fail.status, 503);
    await fail.body?.cancel();
    const soft = await fetch(url("/soft"));
    equal(soft.status, 200);
    equal(await soft.text(), "hello upstream");

    // An upstream that cannot be reached: 502, and post-resp never runs (as in APISIX).
    const dead = await fetch(url("/dead"));
    equal(dead.status, 502);
    match(await dead.text(), /the upstream http:\/\/127\.0\.0\.1:9 failed/);

    // The built-in echo upstream shows what an upstream would receive.
    const echo = await (await fetch(url("/echo?x=1"), { headers: { "x-remove": "1" } })).json();
    equal(echo.uri, "/e?x=1&a=1&a=2");
    ok(echo.headers.includes("x-added: yes"));
    ok(!echo.headers.some((h: string) => h.startsWith("x-remove")));

    // No route: APISIX's 404.
    const none = await fetch(url("/nowhere"));
    equal(none.status, 404);
    deepEqual(await none.json(), { error_msg: "404 Route Not Found" });

    // The runner restarts on the same socket (dev mode): the gateway's tokens are unknown to
    // the new runner, which answers CONF_TOKEN_NOT_FOUND; the gateway prepares again, as
    // APISIX does, and the client notices nothing.
    const socket = runner.socket;
    await runner.stop();
    const down = await fetch(url("/stop/x"));
    equal(down.status, 503, "no runner: 503");
    await down.body?.cancel();
    runner = await startRunner({ config, socket });
    const again = await fetch(url("/stop/again"));
    equal(again.status, 403);
    await again.body?.cancel();
    ok(
      gateway.lines.some((l) =>
        /pre-req: conf token not found: refresh cache and try again/.test(l)
      ),
      "the gateway refreshed the token after CONF_TOKEN_NOT_FOUND",
    );

    // One access line per request, naming the route and what the plugins did.
    await new Promise((resolve) => setTimeout(resolve, 100));
    ok(
      gateway.lines.some((l) => /GET \/stop\/anything → 403 route stop: pre-req: stop/.test(l)),
      gateway.lines.join("\n"),
    );
    ok(
      gateway.lines.some((l) =>
        /GET \/fail → 503 route fail: pre-req: failed \(service unavailable\)/.test(l)
      ),
    );
    ok(
      gateway.lines.some((l) =>
        /GET \/soft → 200 route soft: pre-req: failed \(service unavailable\), degraded/.test(l)
      ),
    );
  } finally {
    await gateway.stop();
    await runner.stop();
    await up.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gateway: a broken routes file is refused with file, key and expectation", async () => {
  const dir = await Deno.makeTempDir({ prefix: "a6-gateway-" });
  try {
    await Deno.writeTextFile(`${dir}/routes.json`, '{"routes": [{"uri": "hello"}]}');
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--cached-only",
        "-R",
        "-W",
        "-N",
        "-E",
        `${ROOT}/gateway/main.ts`,
        "--routes",
        `${dir}/routes.json`,
      ],
      stdin: "null",
    }).output();
    equal(out.code, 2);
    match(
      new TextDecoder().decode(out.stderr),
      /routes\.json: routes\[0\]\.uri: expected a path starting with "\/" \("\/api\/\*" for a prefix\), got "hello"/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
