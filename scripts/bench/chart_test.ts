import { deepEqual, equal, match } from "node:assert/strict";
import { escapeXml, niceCeiling, renderChart, shortRate, yScale } from "./chart.ts";
import { row } from "./test_rows.ts";

const TEXT = { title: "say: calls/s by connections", subtitle: "a <test> & more" };

/** The points of each polyline, in order, as [x, y] pairs. */
function polylines(svg: string): Array<Array<[number, number]>> {
  return [...svg.matchAll(/<polyline points="([^"]+)"/g)].map((m) =>
    m[1]!.split(" ").map((p) => p.split(",").map(Number) as [number, number])
  );
}

Deno.test("one line per runner, in legend order, a point per connection count", () => {
  const svg = renderChart([
    row("inline", 1, 10000),
    row("inline", 64, 70000),
    row("go", 64, 100000),
    row("go", 1, 20000),
    row("go", 16, 70000),
  ], TEXT);
  const lines = polylines(svg);
  equal(lines.length, 2);
  equal(lines[0]!.length, 3, "Go: 1, 16 and 64 connections");
  equal(lines[1]!.length, 2, "inline: 1 and 64");
  // x grows with the connection count; y (downwards in SVG) falls as calls/s rise.
  const [go1, go16, go64] = lines[0]!;
  equal(go1![0] < go16![0] && go16![0] < go64![0], true);
  equal(go1![1] > go16![1] && go16![1] > go64![1], true);
  // Both lines start and end at the same x (same connection counts).
  equal(lines[1]![0]![0], go1![0]);
  equal(lines[1]![1]![0], go64![0]);
  match(svg, /Go runner<\/text>/);
  match(svg, /Deno, inline<\/text>/);
  match(svg, /100k\/s at 64 conns/);
  match(svg, /connections \(log scale\)/);
});

Deno.test("text is escaped, the warning is shown, and references are dashed", () => {
  const svg = renderChart([row("ceiling", 1, 100), row("process", 1, 50)], {
    ...TEXT,
    warning: "Short run",
  });
  match(svg, /a &#60;test&#62; &#38; more/);
  match(svg, /fill="#c0392b"[^>]*>Short run</);
  match(svg, /<polyline [^>]*stroke-dasharray="6 4"\/>/);
  equal(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'), true);
  equal(svg.trimEnd().endsWith("</svg>"), true);
  equal(
    escapeXml(`<a href="x">'&'</a>`),
    "&#60;a href=&#34;x&#34;&#62;&#39;&#38;&#39;&#60;/a&#62;",
  );
});

Deno.test("the y axis is linear from zero for close figures, logarithmic for far-apart ones", () => {
  const linear = yScale(40000, 90000);
  equal(linear.kind, "linear");
  deepEqual(linear.ticks, [0, 20000, 40000, 60000, 80000, 100000]);
  equal(linear.position(50000), 0.5);

  const log = yScale(4864, 356084);
  equal(log.kind, "log");
  deepEqual(log.ticks, [2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000]);
  equal(log.position(2000), 0);
  equal(Math.abs(log.position(500000) - 1) < 1e-9, true);
  // Equal ratios are equal distances.
  const step = log.position(20000) - log.position(10000);
  equal(Math.abs(log.position(200000) - log.position(100000) - step) < 1e-9, true);

  match(
    renderChart([row("go", 1, 4864), row("ceiling", 1, 356084)], TEXT),
    /calls\/s \(log scale\)/,
  );
});

Deno.test("nice ceilings and short rates", () => {
  equal(niceCeiling(356084 * 1.05), 500000);
  equal(niceCeiling(94500), 100000);
  equal(niceCeiling(2100), 2500);
  equal(niceCeiling(0), 1);
  equal(shortRate(250000), "250k");
  equal(shortRate(2500), "2.5k");
  equal(shortRate(1250000), "1.25M");
  equal(shortRate(900), "900");
});
