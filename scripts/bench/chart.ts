/**
 * The benchmark chart: calls per second by connection count, one line per contender (runner and
 * isolation), as a self-contained SVG written by hand (no dependency, renders on GitHub and in
 * any browser). Connection counts grow by factors, so the x axis is logarithmic; calls/s are on
 * a linear axis from zero, or a logarithmic one when they span more than {@linkcode LOG_SPREAD}×
 * (see {@linkcode yScale}).
 *
 * @module
 */
import { CONTENDER_IDS, CONTENDER_LABELS, type ContenderId } from "./contenders.ts";
import type { Row } from "./results.ts";
import { formatRate } from "./table.ts";

/** Line colour and dash pattern of each contender; the references (ceiling, floor) are dashed. */
export const SERIES_STYLE: Readonly<Record<ContenderId, { color: string; dash: string }>> = {
  ceiling: { color: "#6b6b6b", dash: "6 4" },
  go: { color: "#0089b3", dash: "" },
  floor: { color: "#9a7fc4", dash: "2 3" },
  process: { color: "#2e9949", dash: "" },
  inline: { color: "#e07b1f", dash: "" },
};

/** What the chart shows besides the rows. */
export interface ChartText {
  title: string;
  /** A line under the title: when, where, how many runs. */
  subtitle: string;
  /** Shown in red under the subtitle when set (e.g. that this is a short proving run). */
  warning?: string;
}

/** Escapes text for an SVG text node or attribute. */
export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The smallest 1, 2, 2.5 or 5 × 10^k at or above `value` (at least 1). */
export function niceCeiling(value: number): number {
  if (!(value > 1)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

/** `250000` → `250k`, `2500` → `2.5k`, `900` → `900`. */
export function shortRate(value: number): string {
  if (value >= 1e6) return `${+(value / 1e6).toFixed(2)}M`;
  if (value >= 1e3) return `${+(value / 1e3).toFixed(1)}k`;
  return String(Math.round(value));
}

/** A y axis: where a value goes (0 at the bottom, 1 at the top) and its labelled ticks. */
export interface YScale {
  kind: "linear" | "log";
  ticks: number[];
  /** Position of `value` between the bottom (0) and the top (1) of the plot. */
  position(value: number): number;
}

/** Above this spread between the largest and the smallest value the y axis is logarithmic. */
export const LOG_SPREAD = 20;

/**
 * The y axis for values from `min` to `max`: linear from zero when they are within
 * {@linkcode LOG_SPREAD}× of each other (a line twice as high is twice as fast), else
 * logarithmic with ticks at 1, 2 and 5 × 10^k (equal heights are equal ratios, so a runner at
 * 5k calls/s and one at 300k both stay readable).
 */
export function yScale(min: number, max: number): YScale {
  const top = Math.max(max, 1);
  if (min > 0 && top / min > LOG_SPREAD) {
    const power = 10 ** Math.floor(Math.log10(min));
    const lo = [5, 2, 1].map((step) => step * power).find((v) => v <= min * 0.95) ?? power / 2;
    const hi = niceCeiling(top * 1.05);
    const ticks: number[] = [];
    for (let decade = power / 10; decade <= hi; decade *= 10) {
      for (const step of [1, 2, 5]) {
        if (step * decade >= lo && step * decade <= hi) ticks.push(step * decade);
      }
    }
    return {
      kind: "log",
      ticks,
      position: (v) => (Math.log(Math.max(v, lo)) - Math.log(lo)) / (Math.log(hi) - Math.log(lo)),
    };
  }
  const hi = niceCeiling(top * 1.05);
  const step = hi / 5;
  return {
    kind: "linear",
    ticks: [0, 1, 2, 3, 4, 5].map((i) => i * step),
    position: (v) => v / hi,
  };
}

const WIDTH = 760;
const HEIGHT = 440;
const PLOT = { left: 72, right: WIDTH - 200, top: 92, bottom: HEIGHT - 56 };

/** The chart of `rows` (one scenario's) as an SVG document. */
export function renderChart(rows: readonly Row[], text: ChartText): string {
  const conns = [...new Set(rows.map((r) => r.conns))].sort((a, b) => a - b);
  const series = CONTENDER_IDS.filter((id) => rows.some((r) => r.contender === id));
  const rates = rows.map((r) => r.rps).filter((v) => v > 0);
  const scale = yScale(Math.min(...rates, 1e9), Math.max(...rates, 1));
  const [lo, hi] = [Math.log(conns[0] ?? 1), Math.log(conns.at(-1) ?? 1)];
  const x = (c: number) =>
    hi === lo
      ? (PLOT.left + PLOT.right) / 2
      : PLOT.left + 24 + (Math.log(c) - lo) / (hi - lo) * (PLOT.right - PLOT.left - 48);
  const y = (rps: number) => PLOT.bottom - scale.position(rps) * (PLOT.bottom - PLOT.top);
  const n = (v: number) => v.toFixed(1);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" ` +
    `viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${PLOT.left}" y="28" font-size="17" font-weight="bold" fill="#222">${
      escapeXml(text.title)
    }</text>`,
    `<text x="${PLOT.left}" y="48" fill="#555">${escapeXml(text.subtitle)}</text>`,
  ];
  if (text.warning) {
    out.push(
      `<text x="${PLOT.left}" y="68" fill="#c0392b" font-weight="bold">${
        escapeXml(text.warning)
      }</text>`,
    );
  }
  // Horizontal grid and y labels.
  scale.ticks.forEach((value, i) => {
    const at = n(y(value));
    out.push(
      `<line x1="${PLOT.left}" y1="${at}" x2="${PLOT.right}" y2="${at}" stroke="${
        i ? "#e6e6e6" : "#444"
      }"/>`,
      `<text x="${PLOT.left - 8}" y="${at}" dy="4" text-anchor="end" fill="#444">${
        shortRate(value)
      }</text>`,
    );
  });
  // Vertical axis, x ticks and labels.
  out.push(
    `<line x1="${PLOT.left}" y1="${PLOT.top}" x2="${PLOT.left}" y2="${PLOT.bottom}" stroke="#444"/>`,
  );
  for (const c of conns) {
    out.push(
      `<line x1="${n(x(c))}" y1="${PLOT.bottom}" x2="${n(x(c))}" y2="${
        PLOT.bottom + 5
      }" stroke="#444"/>`,
      `<text x="${n(x(c))}" y="${PLOT.bottom + 19}" text-anchor="middle" fill="#444">${c}</text>`,
    );
  }
  out.push(
    `<text x="${(PLOT.left + PLOT.right) / 2}" y="${HEIGHT - 14}" text-anchor="middle" ` +
      `fill="#222">connections (log scale)</text>`,
    `<text transform="translate(18 ${(PLOT.top + PLOT.bottom) / 2}) rotate(-90)" ` +
      `text-anchor="middle" fill="#222">calls/s${
        scale.kind === "log" ? " (log scale)" : ""
      }</text>`,
  );
  // One line per contender, a dot per measurement with its value as a tooltip.
  for (const id of series) {
    const style = SERIES_STYLE[id];
    const points = rows.filter((r) => r.contender === id).sort((a, b) => a.conns - b.conns);
    const path = points.map((p) => `${n(x(p.conns))},${n(y(p.rps))}`).join(" ");
    out.push(
      `<polyline points="${path}" fill="none" stroke="${style.color}" stroke-width="2.5"${
        style.dash ? ` stroke-dasharray="${style.dash}"` : ""
      }/>`,
    );
    for (const p of points) {
      out.push(
        `<circle cx="${n(x(p.conns))}" cy="${n(y(p.rps))}" r="3.5" fill="${style.color}">` +
          `<title>${escapeXml(CONTENDER_LABELS[id])}, ${p.conns} conns: ${
            formatRate(p.rps)
          } calls/s</title></circle>`,
      );
    }
  }
  // Legend, right of the plot, each entry with its value at the most connections.
  const most = conns.at(-1);
  series.forEach((id, i) => {
    const style = SERIES_STYLE[id];
    const top = PLOT.top + 8 + i * 38;
    const last = rows.find((r) => r.contender === id && r.conns === most);
    out.push(
      `<line x1="${PLOT.right + 20}" y1="${top}" x2="${
        PLOT.right + 48
      }" y2="${top}" stroke="${style.color}" stroke-width="2.5"${
        style.dash ? ` stroke-dasharray="${style.dash}"` : ""
      }/>`,
      `<text x="${PLOT.right + 56}" y="${top + 4}" fill="#222">${
        escapeXml(CONTENDER_LABELS[id])
      }</text>`,
    );
    if (last) {
      out.push(
        `<text x="${PLOT.right + 56}" y="${top + 20}" fill="#666" font-size="11">${
          shortRate(last.rps)
        }/s at ${most} conns</text>`,
      );
    }
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
