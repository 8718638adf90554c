/**
 * The loss curve of a run as a standalone SVG string (no dependency): training loss and evaluation loss
 * against the optimizer step, read from the trainer's metrics records (HF `log_history`: `loss` and
 * `eval_loss` with their `step`), with axes, "nice" ticks (1, 2 or 5 × 10^k), grid lines and a legend.
 */
import type { MetricsRecord } from './metrics.js';

/** One line of the plot: (step, value) points in step order. */
export interface PlotSeries {
  name: string;
  color: string;
  points: [number, number][];
}

/** Options of {@link lossCurveSvg}. */
export interface PlotOptions {
  title?: string;
  width?: number;
  height?: number;
}

/** Train (`loss`) and eval (`eval_loss`) points of metrics records; non-finite values are left out. */
export function lossSeries(records: readonly MetricsRecord[]): PlotSeries[] {
  const pick = (key: string) => records
    .filter((r) => typeof r[key] === 'number' && Number.isFinite(r[key]) && typeof r.step === 'number')
    .map((r) => [r.step as number, r[key] as number] as [number, number])
    .sort((a, b) => a[0] - b[0]);
  return [
    { name: 'train loss', color: '#1f77b4', points: pick('loss') },
    { name: 'eval loss', color: '#d62728', points: pick('eval_loss') },
  ];
}

/** Tick values covering [lo, hi] at a step of 1, 2 or 5 × 10^k, about `count` of them. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  // d3's tickIncrement rule: the multiple nearest to the raw step on a log scale.
  const err = raw / mag;
  const step = mag * (err >= Math.sqrt(50) ? 10 : err >= Math.sqrt(10) ? 5 : err >= Math.sqrt(2) ? 2 : 1);
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function label(v: number): string {
  return Math.abs(v) >= 1e5 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(1) : String(Number(v.toPrecision(6)));
}

function range(values: number[]): [number, number] {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  if (hi > lo) return [lo, hi];
  const pad = Math.abs(lo) * 0.05 || 1;
  return [lo - pad, hi + pad];
}

/** The SVG document of the curves of `series` (default: {@link lossSeries} of `records`). */
export function lossCurveSvg(records: readonly MetricsRecord[], opts: PlotOptions = {}, series = lossSeries(records)): string {
  const W = opts.width ?? 720;
  const H = opts.height ?? 420;
  const m = { left: 70, right: 20, top: 40, bottom: 50 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const title = escapeXml(opts.title ?? 'Loss');
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect x="0" y="0" width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${title}</text>`,
  ];
  const drawn = series.filter((s) => s.points.length > 0);
  if (!drawn.length) {
    out.push(`<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no loss values recorded</text>`, '</svg>');
    return out.join('\n') + '\n';
  }
  const all = drawn.flatMap((s) => s.points);
  const [x0, x1] = range(all.map((p) => p[0]));
  const [yMin, yMax] = range(all.map((p) => p[1]));
  const yTicks = niceTicks(yMin, yMax);
  const y0 = Math.min(yMin, yTicks[0]);
  const y1 = Math.max(yMax, yTicks[yTicks.length - 1]);
  const X = (v: number) => Number((m.left + ((v - x0) / (x1 - x0)) * pw).toFixed(2));
  const Y = (v: number) => Number((m.top + ph - ((v - y0) / (y1 - y0)) * ph).toFixed(2));
  out.push(`<g stroke="#ddd">`);
  for (const t of yTicks) out.push(`<line x1="${m.left}" y1="${Y(t)}" x2="${m.left + pw}" y2="${Y(t)}"/>`);
  out.push('</g>');
  out.push(`<g stroke="black"><line x1="${m.left}" y1="${m.top + ph}" x2="${m.left + pw}" y2="${m.top + ph}"/><line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + ph}"/></g>`);
  out.push('<g text-anchor="middle">');
  for (const t of niceTicks(x0, x1).filter((t) => t >= x0 && t <= x1)) {
    out.push(`<line x1="${X(t)}" y1="${m.top + ph}" x2="${X(t)}" y2="${m.top + ph + 5}" stroke="black"/><text x="${X(t)}" y="${m.top + ph + 18}">${label(t)}</text>`);
  }
  out.push(`<text x="${m.left + pw / 2}" y="${H - 12}">step</text></g>`);
  out.push('<g text-anchor="end">');
  for (const t of yTicks) out.push(`<line x1="${m.left - 5}" y1="${Y(t)}" x2="${m.left}" y2="${Y(t)}" stroke="black"/><text x="${m.left - 8}" y="${Y(t) + 4}">${label(t)}</text>`);
  out.push(`</g><text x="18" y="${m.top + ph / 2}" text-anchor="middle" transform="rotate(-90 18 ${m.top + ph / 2})">loss</text>`);
  for (const s of drawn) {
    const pts = s.points.map(([x, y]) => `${X(x)},${Y(y)}`).join(' ');
    out.push(`<polyline data-series="${escapeXml(s.name)}" fill="none" stroke="${s.color}" stroke-width="1.5" points="${pts}"/>`);
    // Few points (evaluations) are hard to see as a line alone.
    if (s.points.length <= 50) out.push(`<g fill="${s.color}">${s.points.map(([x, y]) => `<circle cx="${X(x)}" cy="${Y(y)}" r="2.5"/>`).join('')}</g>`);
  }
  drawn.forEach((s, i) => {
    const ly = m.top + 8 + i * 18;
    const lx = m.left + pw - 130;
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 24}" y2="${ly}" stroke="${s.color}" stroke-width="2"/><text x="${lx + 30}" y="${ly + 4}">${escapeXml(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
