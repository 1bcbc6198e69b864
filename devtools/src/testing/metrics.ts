/**
 * Reading a process's `/metrics` in tests: fetch, parse the Prometheus text
 * exposition format (0.0.4) strictly (a malformed line fails the test), and
 * look up samples by name and labels. Histograms are read through their
 * `_count`, `_sum` and `_bucket` series, as PromQL does.
 */

/** One sample line: metric name, labels, value. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y;

/** A sample value as Prometheus reads it (Go's ParseFloat: `NaN`, `Inf` in any case). */
function parseValue(text: string, line: string): number {
  const t = text.toLowerCase();
  if (t === '+inf' || t === 'inf') return Infinity;
  if (t === '-inf') return -Infinity;
  if (t === 'nan') return NaN;
  const v = Number(text);
  if (text === '' || Number.isNaN(v)) throw new Error(`bad sample value in: ${line}`);
  return v;
}

function unescape(v: string): string {
  return v.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

/** Parses the text format; throws on any line that is not a comment, blank, or a well-formed sample. */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  const types = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# TYPE ([^ ]+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      if (m) {
        if (types.has(m[1]!)) throw new Error(`metric ${m[1]} declared twice`);
        types.set(m[1]!, m[2]!);
      } else if (!/^# HELP [^ ]+( .*)?$/.test(line) && line.startsWith('# TYPE')) throw new Error(`bad TYPE line: ${line}`);
      continue;
    }
    const brace = line.indexOf('{');
    let name: string;
    let rest: string;
    const labels: Record<string, string> = {};
    if (brace >= 0) {
      name = line.slice(0, brace);
      const close = line.lastIndexOf('}');
      if (close < brace) throw new Error(`unbalanced braces in: ${line}`);
      const body = line.slice(brace + 1, close);
      LABEL.lastIndex = 0;
      while (LABEL.lastIndex < body.length) {
        const start = LABEL.lastIndex;
        const m = LABEL.exec(body);
        if (!m || m.index !== start) throw new Error(`bad labels in: ${line}`);
        if (m[1]! in labels) throw new Error(`label ${m[1]} repeated in: ${line}`);
        labels[m[1]!] = unescape(m[2]!);
      }
      rest = line.slice(close + 1).trim();
    } else {
      const sp = line.indexOf(' ');
      name = line.slice(0, sp);
      rest = line.slice(sp + 1).trim();
    }
    if (!NAME.test(name)) throw new Error(`bad metric name in: ${line}`);
    const [value, ts, extra] = rest.split(/\s+/);
    if (extra !== undefined || (ts !== undefined && !/^-?\d+$/.test(ts))) throw new Error(`bad sample in: ${line}`);
    out.push({ name, labels, value: parseValue(value ?? '', line) });
  }
  return out;
}

/** GETs `url` (a /metrics endpoint) and parses it. */
export async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}`);
  const type = res.headers.get('content-type') ?? '';
  if (!type.startsWith('text/plain')) throw new Error(`GET ${url} answered ${type}, not the text format`);
  return parseMetrics(await res.text());
}

/**
 * The sum of the samples named `name` whose labels include `labels` (0 when
 * there are none): a counter's value, a histogram's `_count` or `_sum`.
 */
export function valueOf(samples: readonly Sample[], name: string, labels: Readonly<Record<string, string>> = {}): number {
  let total = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) total += s.value;
  }
  return total;
}

/** Every value a label takes among the samples named `name`. */
export function labelValues(samples: readonly Sample[], name: string, label: string): string[] {
  return [...new Set(samples.filter((s) => s.name === name && s.labels[label] !== undefined).map((s) => s.labels[label]!))].sort();
}
