/**
 * The usage chart: one stacked bar per day of the month, a segment per kind
 * of operation (writes, reads, streams, events, admin), as SVG drawn for the
 * width it is given (so the labels keep their size on a phone). A few dozen
 * lines of SVG rather than a chart library: no dependency, nothing the
 * page's Content-Security-Policy (no inline styles or scripts) would
 * refuse, and the page already draws its sparkline this way. Colours come
 * from the stylesheet (`.k-writes` ...). The figures are also in the table
 * next to it, for screen readers and for reading exact values.
 */
import type { UsageKind } from './api.js';

const SVG = 'http://www.w3.org/2000/svg';

export interface DayUsage {
  /** YYYY-MM-DD (UTC). */
  day: string;
  counts: Record<UsageKind, number>;
}

function el<K extends keyof SVGElementTagNameMap>(name: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A round axis maximum ≥ max: 1, 2, 2.5 or 5 times a power of ten. */
export function niceMax(max: number): number {
  if (max <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  return ([1, 2, 2.5, 5, 10].map((m) => m * p).find((v) => v >= max) ?? 10 * p);
}

const fmt = (n: number) => n.toLocaleString('en-US');

/** The chart of `days` for the kinds shown, `width` CSS pixels wide. */
export function usageChart(days: readonly DayUsage[], kinds: readonly UsageKind[], width: number, label: string): SVGSVGElement {
  const w = Math.max(280, Math.round(width));
  const h = w < 500 ? 200 : 240;
  const m = { top: 12, right: 8, bottom: 26, left: 48 };
  const plotW = w - m.left - m.right;
  const plotH = h - m.top - m.bottom;
  const totals = days.map((d) => kinds.reduce((s, k) => s + d.counts[k], 0));
  const top = niceMax(Math.max(0, ...totals));
  const y = (v: number) => m.top + plotH - (v / top) * plotH;

  const svg = el('svg', { viewBox: `0 0 ${w} ${h}`, width: w, height: h, role: 'img', class: 'usage-svg' });
  svg.append(el('title', {}, label));

  // Grid lines and their labels: 0, ¼, ½, ¾ and all of the axis maximum.
  const grid = el('g', { class: 'grid' });
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    const yy = Math.round(y(v)) + 0.5;
    grid.append(el('line', { x1: m.left, x2: w - m.right, y1: yy, y2: yy }));
    const text = v >= 1e6 ? `${+(v / 1e6).toFixed(2)}M` : v >= 1e4 ? `${+(v / 1e3).toFixed(1)}k` : fmt(Math.round(v * 100) / 100);
    grid.append(el('text', { x: m.left - 6, y: yy + 4, 'text-anchor': 'end' }, text));
  }
  svg.append(grid);

  const slot = plotW / Math.max(1, days.length);
  const barW = Math.max(2, Math.min(28, slot * 0.7));
  // Day labels: every day when there is room, else 1 and every 5th (or 10th).
  const every = slot >= 22 ? 1 : slot >= 9 ? 5 : 10;
  const bars = el('g', { class: 'bars' });
  const labels = el('g', { class: 'days' });
  days.forEach((d, i) => {
    const x = m.left + i * slot + (slot - barW) / 2;
    const dayNo = Number(d.day.slice(8, 10));
    const g = el('g', { 'data-day': d.day, 'data-total': totals[i]! });
    let base = 0;
    for (const k of kinds) {
      const v = d.counts[k];
      if (v <= 0) continue;
      const y0 = y(base);
      const y1 = y(base + v);
      base += v;
      const r = el('rect', { x: x.toFixed(1), y: y1.toFixed(1), width: barW.toFixed(1), height: Math.max(1, y0 - y1).toFixed(1), class: `k-${k}` });
      r.append(el('title', {}, `${d.day}: ${fmt(v)} ${k}`));
      g.append(r);
    }
    bars.append(g);
    if (dayNo === 1 || dayNo % every === 0) labels.append(el('text', { x: (x + barW / 2).toFixed(1), y: h - 8, 'text-anchor': 'middle' }, String(dayNo)));
  });
  svg.append(bars, labels, el('line', { class: 'axis', x1: m.left, x2: w - m.right, y1: m.top + plotH + 0.5, y2: m.top + plotH + 0.5 }));
  return svg;
}
