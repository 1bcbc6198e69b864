/** A player's score history as a small inline SVG line (no library). */
import type { HistoryEvent } from './api.js';

const SVG = 'http://www.w3.org/2000/svg';
const W = 300;
const H = 60;
const PAD = 4;

/**
 * Renders `events` (newest first, as GET /history answers) oldest to newest,
 * scores scaled to the box; the last point is marked.
 */
export function sparkline(events: readonly HistoryEvent[], label: string): SVGSVGElement {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  const pts = [...events].reverse().map((e) => e.score);
  if (pts.length === 0) return svg;
  const min = Math.min(...pts);
  const max = Math.max(...pts);
  const span = max - min || 1;
  const x = (i: number) => (pts.length === 1 ? W / 2 : PAD + (i * (W - 2 * PAD)) / (pts.length - 1));
  const y = (v: number) => (max === min ? H / 2 : H - PAD - ((v - min) * (H - 2 * PAD)) / span);
  const coords = pts.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
  const area = document.createElementNS(SVG, 'polygon');
  area.setAttribute('points', `${x(0).toFixed(1)},${H} ${coords.join(' ')} ${x(pts.length - 1).toFixed(1)},${H}`);
  area.setAttribute('class', 'spark-area');
  const line = document.createElementNS(SVG, 'polyline');
  line.setAttribute('points', coords.join(' '));
  line.setAttribute('class', 'spark-line');
  line.setAttribute('vector-effect', 'non-scaling-stroke');
  const dot = document.createElementNS(SVG, 'circle');
  dot.setAttribute('cx', x(pts.length - 1).toFixed(1));
  dot.setAttribute('cy', y(pts.at(-1)!).toFixed(1));
  dot.setAttribute('r', '3');
  dot.setAttribute('class', 'spark-dot');
  svg.append(area, line, dot);
  return svg;
}
