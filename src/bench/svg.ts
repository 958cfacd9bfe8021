// Charts as hand-written SVG (no dependency): grouped bars in the style of the
// paper's Fig. 3 (send and receive, Linux against the gateway) and a line chart
// for the message-size sweep. Every bar is a <rect class="bar"> carrying
// data-config, data-group and data-value, so tests (and people) can read the
// chart back.
import type { BenchConfig } from './plan.ts';

const LINUX_COLORS = ['#3c3c3c', '#8a8a8a', '#b5b5b5'];
const MG_COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];

/** One color per configuration: greys for Linux, a palette for microgate. */
export function configColors(configs: readonly BenchConfig[]): Map<string, string> {
  const m = new Map<string, string>();
  let l = 0;
  let g = 0;
  for (const c of configs) m.set(c.id, c.gateway === 'linux' ? LINUX_COLORS[l++ % LINUX_COLORS.length] : MG_COLORS[g++ % MG_COLORS.length]);
  return m;
}

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** Rough rendered width of a text line (px per character). */
const textWidth = (s: string, perChar: number): number => s.length * perChar;

const n = (v: number): string => (Math.round(v * 10) / 10).toString();

/** Round "nice" tick step for a range. */
function niceStep(max: number, ticks: number): number {
  const raw = max / ticks;
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * p;
}

function fmtTick(v: number): string {
  if (v === 0) return '0';
  if (Math.abs(v) >= 1000) return `${n(v / 1000)}k`;
  return Number.isInteger(v) ? String(v) : v.toPrecision(3).replace(/\.?0+$/, '');
}

export interface Bar {
  config: string;
  value: number;
  min?: number;
  max?: number;
  /** Text under the value, e.g. "0.84x". */
  note?: string;
}

export interface BarGroup {
  /** Machine name (data-group): "tx", "rx", "p99". */
  key: string;
  label: string;
  bars: Bar[];
}

export interface BarChartOptions {
  title: string;
  subtitle?: string;
  yLabel: string;
  groups: BarGroup[];
  configs: readonly BenchConfig[];
  /** Logarithmic y axis (latencies). */
  log?: boolean;
  digits?: number;
}

interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

function legend(configs: readonly BenchConfig[], colors: Map<string, string>, x: number, y: number): string {
  return configs
    .map((c, i) => `<g class="legend" data-config="${esc(c.id)}"><rect x="${x}" y="${y + i * 20}" width="14" height="14" fill="${colors.get(c.id)}"/><text x="${x + 20}" y="${y + i * 20 + 11}">${esc(c.label)}</text></g>`)
    .join('\n');
}

function header(f: Frame, title: string, subtitle?: string): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${f.width}" height="${f.height}" viewBox="0 0 ${f.width} ${f.height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect x="0" y="0" width="${f.width}" height="${f.height}" fill="#ffffff"/>`,
    `<text x="${f.width / 2}" y="22" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`,
    subtitle ? `<text x="${f.width / 2}" y="40" text-anchor="middle" fill="#555555">${esc(subtitle)}</text>` : '',
  ].join('\n');
}

/** Y axis with grid: returns the SVG and the value -> y mapping. */
function yAxis(f: Frame, maxV: number, minV: number, log: boolean, label: string): { svg: string; y: (v: number) => number } {
  const plotH = f.height - f.top - f.bottom;
  const parts: string[] = [];
  let y: (v: number) => number;
  let ticks: number[];
  if (log) {
    const lo = 10 ** Math.floor(Math.log10(Math.max(minV, 1e-9)));
    const hi = 10 ** Math.ceil(Math.log10(Math.max(maxV, lo * 10)));
    y = (v) => f.top + plotH * (1 - (Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)));
    ticks = [];
    for (let t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t);
  } else {
    const step = niceStep(maxV > 0 ? maxV * 1.1 : 1, 6);
    const top = Math.ceil((maxV > 0 ? maxV * 1.1 : 1) / step) * step;
    y = (v) => f.top + plotH * (1 - Math.max(0, v) / top);
    ticks = [];
    for (let t = 0; t <= top + step / 1000; t += step) ticks.push(t);
  }
  for (const t of ticks) {
    const yy = n(y(t));
    parts.push(`<line x1="${f.left}" y1="${yy}" x2="${f.width - f.right}" y2="${yy}" stroke="#e3e3e3"/>`);
    parts.push(`<text x="${f.left - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${esc(fmtTick(t))}</text>`);
  }
  parts.push(`<line x1="${f.left}" y1="${f.top}" x2="${f.left}" y2="${f.height - f.bottom}" stroke="#333333"/>`);
  parts.push(`<line x1="${f.left}" y1="${f.height - f.bottom}" x2="${f.width - f.right}" y2="${f.height - f.bottom}" stroke="#333333"/>`);
  const cy = f.top + plotH / 2;
  parts.push(`<text x="16" y="${n(cy)}" text-anchor="middle" transform="rotate(-90 16 ${n(cy)})">${esc(label)}</text>`);
  return { svg: parts.join('\n'), y };
}

/** Grouped bars (Fig. 3): one group per direction / percentile, one bar per configuration, min-max whiskers. */
export function barChart(o: BarChartOptions): string {
  const colors = configColors(o.configs);
  const perGroup = Math.max(1, ...o.groups.map((g) => g.bars.length));
  const barW = perGroup > 6 ? 30 : 40;
  const groupW = perGroup * (barW + 6) + 40;
  const legendW = 20 + Math.max(...o.configs.map((c) => c.label.length)) * 7;
  const f: Frame = { width: 0, height: 420, left: 70, right: 30 + legendW, top: o.subtitle ? 60 : 44, bottom: 50 };
  f.width = Math.max(480, f.left + o.groups.length * groupW + f.right, textWidth(o.title, 9.5) + 40, textWidth(o.subtitle ?? '', 6.5) + 40);
  f.height = Math.max(f.height, f.top + o.configs.length * 20 + f.bottom + 20);
  const values = o.groups.flatMap((g) => g.bars.flatMap((b) => [b.value, b.max ?? b.value])).filter((v) => Number.isFinite(v) && v > 0);
  const maxV = values.length ? Math.max(...values) : 1;
  const minV = values.length ? Math.min(...o.groups.flatMap((g) => g.bars.map((b) => b.min ?? b.value)).filter((v) => Number.isFinite(v) && v > 0)) : 1;
  const ax = yAxis(f, maxV, minV, o.log === true, o.yLabel);
  const parts = [header(f, o.title, o.subtitle), ax.svg];
  const base = f.height - f.bottom;
  const digits = o.digits ?? 2;
  o.groups.forEach((g, gi) => {
    const gx = f.left + 20 + gi * groupW;
    parts.push(`<g class="group" data-group="${esc(g.key)}">`);
    g.bars.forEach((b, bi) => {
      const x = gx + bi * (barW + 6);
      const ok = Number.isFinite(b.value) && b.value > 0;
      const y = ok ? ax.y(b.value) : base;
      parts.push(`<rect class="bar" data-config="${esc(b.config)}" data-group="${esc(g.key)}" data-value="${ok ? b.value : 'NaN'}" x="${n(x)}" y="${n(y)}" width="${barW}" height="${n(Math.max(0, base - y))}" fill="${colors.get(b.config) ?? '#999999'}"><title>${esc(`${o.configs.find((c) => c.id === b.config)?.label ?? b.config}, ${g.label}: ${ok ? b.value.toFixed(digits) : 'not measured'}`)}</title></rect>`);
      if (b.min !== undefined && b.max !== undefined && Number.isFinite(b.min) && Number.isFinite(b.max) && b.max > b.min) {
        const cx = n(x + barW / 2);
        parts.push(`<path class="whisker" d="M${cx} ${n(ax.y(b.min))} V${n(ax.y(b.max))} M${n(x + barW / 2 - 5)} ${n(ax.y(b.min))} H${n(x + barW / 2 + 5)} M${n(x + barW / 2 - 5)} ${n(ax.y(b.max))} H${n(x + barW / 2 + 5)}" stroke="#000000" fill="none"/>`);
      }
      const labelY = Math.min(y, b.max !== undefined && Number.isFinite(b.max) ? ax.y(b.max) : y) - 4;
      parts.push(`<text x="${n(x + barW / 2)}" y="${n(labelY)}" text-anchor="middle" font-size="10">${ok ? esc(b.value.toFixed(digits)) : 'n/a'}</text>`);
      if (b.note) parts.push(`<text x="${n(x + barW / 2)}" y="${n(labelY - 12)}" text-anchor="middle" font-size="10" fill="#555555">${esc(b.note)}</text>`);
    });
    parts.push(`<text x="${n(gx + (g.bars.length * (barW + 6) - 6) / 2)}" y="${base + 20}" text-anchor="middle" font-weight="bold">${esc(g.label)}</text>`);
    parts.push('</g>');
  });
  parts.push(legend(o.configs, colors, f.width - f.right + 20, f.top));
  parts.push('</svg>');
  return `${parts.filter((p) => p !== '').join('\n')}\n`;
}

export interface LineSeries {
  config: string;
  points: { x: number; y: number }[];
}

/** Lines over a log2 x axis (the message-size sweep). */
export function lineChart(o: { title: string; subtitle?: string; xLabel: string; yLabel: string; series: LineSeries[]; configs: readonly BenchConfig[] }): string {
  const colors = configColors(o.configs);
  const legendW = 20 + Math.max(...o.configs.map((c) => c.label.length)) * 7;
  const f: Frame = { width: Math.max(760 + legendW, textWidth(o.title, 9.5) + 40), height: 420, left: 70, right: 30 + legendW, top: o.subtitle ? 60 : 44, bottom: 60 };
  f.height = Math.max(f.height, f.top + o.configs.length * 20 + f.bottom + 20);
  const xs = [...new Set(o.series.flatMap((s) => s.points.map((p) => p.x)))].filter((x) => x > 0).sort((a, b) => a - b);
  const ys = o.series.flatMap((s) => s.points.map((p) => p.y)).filter((v) => Number.isFinite(v));
  const ax = yAxis(f, ys.length ? Math.max(...ys) : 1, 0, false, o.yLabel);
  const lo = Math.log2(xs[0] ?? 1);
  const hi = Math.log2(xs[xs.length - 1] ?? 2);
  const plotW = f.width - f.left - f.right - 40;
  const x = (v: number): number => f.left + 20 + (hi > lo ? (plotW * (Math.log2(v) - lo)) / (hi - lo) : plotW / 2);
  const parts = [header(f, o.title, o.subtitle), ax.svg];
  const base = f.height - f.bottom;
  for (const v of xs) {
    parts.push(`<line x1="${n(x(v))}" y1="${base}" x2="${n(x(v))}" y2="${base + 5}" stroke="#333333"/>`);
    parts.push(`<text x="${n(x(v))}" y="${base + 18}" text-anchor="middle">${esc(v >= 1024 ? `${n(v / 1024)}K` : String(v))}</text>`);
  }
  parts.push(`<text x="${n(f.left + (f.width - f.left - f.right) / 2)}" y="${base + 40}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  for (const s of o.series) {
    const pts = s.points.filter((p) => Number.isFinite(p.y) && p.x > 0).sort((a, b) => a.x - b.x);
    const color = colors.get(s.config) ?? '#999999';
    parts.push(`<g class="series" data-config="${esc(s.config)}">`);
    if (pts.length > 1) parts.push(`<polyline class="line" points="${pts.map((p) => `${n(x(p.x))},${n(ax.y(p.y))}`).join(' ')}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const p of pts) parts.push(`<circle class="point" data-config="${esc(s.config)}" data-x="${p.x}" data-value="${p.y}" cx="${n(x(p.x))}" cy="${n(ax.y(p.y))}" r="3.5" fill="${color}"><title>${esc(`${p.x} B: ${p.y.toFixed(2)}`)}</title></circle>`);
    parts.push('</g>');
  }
  parts.push(legend(o.configs, colors, f.width - f.right + 20, f.top));
  parts.push('</svg>');
  return `${parts.filter((p) => p !== '').join('\n')}\n`;
}
