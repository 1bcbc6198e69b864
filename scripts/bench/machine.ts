/** What machine a benchmark ran on, for docs/BENCHMARKS.md. */
import { cpus, totalmem, release } from 'node:os';

export function machineLine(): string {
  const c = cpus();
  return `${c.length} × ${c[0]?.model.trim() ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Linux ${release()}, Node ${process.version}`;
}

/** Percentile of a sorted numeric array (nearest rank). */
export function pct(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : 'n/a');

/** Median of the finite values (NaN when none). */
export const median = (xs: readonly number[]): number => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
/** `median (min–max)`. */
export const spread = (xs: readonly number[], digits = 0, unit = ''): string => {
  const f = xs.filter(Number.isFinite);
  if (f.length === 0) return 'n/a';
  return `${fmt(median(f), digits)}${unit} (${fmt(Math.min(...f), digits)}–${fmt(Math.max(...f), digits)})`;
};
