/**
 * The cost of observability (issue 11): the same load through nginx on the
 * same stack three ways, alternated in one sitting —
 *   (a) `metrics: false` and no OTEL env: the baseline;
 *   (b) metrics on (the default: every Node service serves /metrics, the
 *       exporters and Prometheus run and scrape, as in `npm start`);
 *   (c) (b) plus tracing at 10% sampling, exported over OTLP/HTTP to a sink
 *       this process runs (it answers 200 and counts, so export costs are real).
 * Metrics and tracing are chosen at start-up, so the stack is restarted for
 * each configuration, on one data directory seeded once (Redis AOF and
 * Postgres keep the players). In (b) and (c) the persistence lag and the
 * backlog are read from the metrics themselves: the lag histogram of the
 * worker's /metrics before and after the run, the backlog gauge from the
 * stack's Prometheus.
 *
 * `--only runtime` runs the same machinery on another set of configurations:
 * the stack on Node 20 and on the project's Node 26 (everything else equal,
 * metrics off), each also with tracing at 10% — the runtime A/B of issue 19
 * and the tracing cost on each runtime, in one sitting.
 */
import { statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { createLogger, METRIC, topologyJson } from '@lb/common/platform';
import { scrape, type Sample } from '@lb/devtools/testing';
import { createDeps } from '@lb/leaderboard-service/deps';
import { loadConfig } from '@lb/leaderboard-service/config';
import { DEFAULT_SCRAPE_INTERVAL_S } from '../stack/options.js';
import { ensureNodeBinary } from '../runtime.mjs';
import { REPO_ROOT } from '../stack/paths.js';
import { startStack, type Stack } from '../stack/stack.js';
import { BENCH_LIMITS, groupsOf, playerTokens, REGIONS, run, seedPlayers, waitDrained, WARM_UP_S, type Deps, type RunResult } from './http.js';
import { onInterrupt } from './interrupt.js';
import { loadTool, type MixEntry } from './load.js';
import { fmt, machineLine, median, spread } from './machine.js';

export interface ObservabilityBenchOptions {
  quick: boolean;
  /** `runtime`: Node 20 against Node 26 instead of metrics and tracing (see the module comment). */
  preset?: 'observability' | 'runtime';
  /** Rounds of (a, b, c); default 3. */
  rounds?: number;
  /** Seconds per measured run (default 10, --quick 5). */
  durationS?: number;
  connections?: number;
}

/** The sampling ratio of configuration (c). */
const SAMPLING = 0.1;
/** Targets (issue 19): metrics cost less than this share of CPU per request against metrics off... */
const MAX_METRICS_CPU = 0.05;
/** ...and tracing at SAMPLING less than this share of throughput against the same stack without tracing. */
const MAX_TRACING_LOSS = 0.1;
const PLAYERS = 20_000;

interface Config {
  readonly key: string;
  readonly label: string;
  /** The configuration of the same round it is compared with (default: the first). */
  readonly base?: string;
  /** The Node.js binary of the stack's Node services (default: this process's). */
  readonly node?: string;
  readonly metrics: boolean;
  readonly tracing: boolean;
  /** Prometheus and the exporters run (false: stopped once the stack is up, so only the Node processes' own recording differs from (a)). */
  readonly scraped: boolean;
}
const CONFIGS: readonly Config[] = [
  { key: 'off', label: '(a) off', metrics: false, tracing: false, scraped: false },
  { key: 'recording', label: '(b0) metrics recorded, not scraped', metrics: true, tracing: false, scraped: false },
  { key: 'metrics', label: '(b) metrics', metrics: true, tracing: false, scraped: true },
  { key: 'tracing', label: `(c) metrics + tracing ${SAMPLING * 100}%`, base: 'metrics', metrics: true, tracing: true, scraped: true },
];

/** The Node the runtime A/B compares the project's Node with: the last release of the line this project ran on before. */
const OLD_NODE = '20.20.2';

/** The runtime A/B: (a) Node 20, (b) Node 26, then each with tracing at 10% (metrics off throughout). */
function runtimeConfigs(log: (s: string) => void): Config[] {
  const old = ensureNodeBinary(REPO_ROOT, OLD_NODE, log);
  const now = `Node ${process.versions.node}`;
  return [
    { key: 'old', label: `(a) Node ${OLD_NODE}`, metrics: false, tracing: false, scraped: false, node: old },
    { key: 'new', label: `(b) ${now}`, base: 'old', metrics: false, tracing: false, scraped: false },
    { key: 'old-tracing', label: `(c) Node ${OLD_NODE} + tracing ${SAMPLING * 100}%`, base: 'old', metrics: false, tracing: true, scraped: false, node: old },
    { key: 'new-tracing', label: `(d) ${now} + tracing ${SAMPLING * 100}%`, base: 'new', metrics: false, tracing: true, scraped: false },
  ];
}

interface Load {
  readonly key: 'writes' | 'mix';
  readonly label: string;
}
const LOADS: readonly Load[] = [
  { key: 'writes', label: 'writes (100% POST /score/add)' },
  { key: 'mix', label: 'mix (70% reads: /top, /rank/:id; 30% writes)' },
];

/** One measured run: a configuration, a load, a round. */
interface Sampled {
  readonly config: Config['key'];
  readonly load: Load['key'];
  readonly round: number;
  readonly run: RunResult;
  /** CPU of processes outside the stack and this bench during the run, in cores (other users of the machine). */
  readonly otherCores: number;
  /** From the worker's lag histogram over the run, ms (metrics on only). */
  readonly lag?: { p50: number; p99: number; events: number };
  /** Peak of Prometheus's `lb_backlog_events` samples during the run, by shard (metrics on only). */
  readonly backlogPeak?: Record<string, number>;
  /** What the services exported during the run (tracing only). */
  readonly otlp?: OtlpCounts;
}

interface OtlpCounts {
  requests: number;
  bytes: number;
  spans: number;
}

// ------------------------------------------------------------ OTLP sink ----

/** An OTLP/HTTP receiver that accepts `POST /v1/traces`, answers 200 and counts requests, bytes and spans. */
class OtlpSink {
  private readonly server: Server;
  private readonly pending: { body: Buffer; gzip: boolean }[] = [];
  private readonly counts: OtlpCounts = { requests: 0, bytes: 0, spans: 0 };
  /** Bodies that were not OTLP JSON (the spans they held are not counted). */
  unparsed = 0;
  url = '';

  constructor() {
    this.server = createServer((req, res) => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        this.counts.requests++;
        this.counts.bytes += body.length;
        // Parsed later, outside the measured window (see counted()).
        this.pending.push({ body, gzip: req.headers['content-encoding'] === 'gzip' });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const addr = this.server.address();
    if (addr === null || typeof addr === 'string') throw new Error('OTLP sink: no port');
    this.url = `http://127.0.0.1:${addr.port}`;
  }

  /** The totals so far (parses the bodies received since the last call). */
  counted(): OtlpCounts {
    for (const p of this.pending.splice(0)) {
      try {
        const doc = JSON.parse((p.gzip ? gunzipSync(p.body) : p.body).toString('utf8')) as { resourceSpans?: { scopeSpans?: { spans?: unknown[] }[] }[] };
        for (const r of doc.resourceSpans ?? []) for (const s of r.scopeSpans ?? []) this.counts.spans += s.spans?.length ?? 0;
      } catch {
        this.unparsed++;
      }
    }
    return { ...this.counts };
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

// -------------------------------------------------------- from metrics ----

/** Busy CPU seconds of the whole machine (all cores) so far, from /proc/stat. */
async function machineBusySeconds(): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const f = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: everything but idle and iowait (steal is a neighbour's use).
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + (f[7] ?? 0)) / 100;
}

/** Cumulative counts of a histogram by upper bound, summed over its other labels, as `sum by (le)` does. */
function buckets(samples: readonly Sample[], name: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const s of samples) {
    if (s.name !== `${name}_bucket`) continue;
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    out.set(le, (out.get(le) ?? 0) + s.value);
  }
  return out;
}

/**
 * The q-quantile of the observations between two scrapes of a histogram,
 * interpolated within its bucket as PromQL's histogram_quantile does
 * (the top finite bound when it falls in +Inf).
 */
export function quantileBetween(before: readonly Sample[], after: readonly Sample[], name: string, q: number): { value: number; count: number } {
  const b = buckets(before, name);
  const rows = [...buckets(after, name)].map(([le, n]) => [le, n - (b.get(le) ?? 0)] as const).sort((x, y) => x[0] - y[0]);
  const count = rows.at(-1)?.[1] ?? 0;
  if (count <= 0) return { value: NaN, count: 0 };
  const rank = q * count;
  let lower = 0;
  let below = 0;
  for (const [le, n] of rows) {
    if (n >= rank) {
      if (le === Infinity) return { value: lower, count };
      return { value: lower + ((le - lower) * (rank - below)) / Math.max(n - below, Number.MIN_VALUE), count };
    }
    lower = le;
    below = n;
  }
  return { value: lower, count };
}

/** Peak of each shard's backlog gauge over the `seconds` before `at` (ms), from Prometheus. */
async function backlogPeak(prometheusUrl: string, at: number, seconds: number): Promise<Record<string, number>> {
  const query = `max by (shard) (max_over_time(${METRIC.backlog}[${seconds}s]))`;
  const res = await fetch(`${prometheusUrl}/api/v1/query?${new URLSearchParams({ query, time: String(at / 1000) })}`);
  const body = (await res.json()) as { status: string; data?: { result: { metric: { shard?: string }; value: [number, string] }[] } };
  if (body.status !== 'success') throw new Error(`Prometheus answered ${res.status} to ${query}`);
  return Object.fromEntries(body.data!.result.map((r) => [r.metric.shard ?? '?', Number(r.value[1])]));
}

// ------------------------------------------------------------ the runs ----

/** When each workspace's build last succeeded: a change between stack starts means the rounds did not all run the same code. */
function buildStamp(): string {
  return ['common', 'leaderboard-service', 'worker-service', 'api-gateway']
    .map((w) => {
      try {
        return statSync(join(REPO_ROOT, w, 'dist', '.built')).mtimeMs;
      } catch {
        return 0;
      }
    })
    .join(',');
}

/** Starts the stack on `dataDir` in configuration `cfg`, runs `fn` with it and an in-process view of its stores, stops it. */
async function withStack<T>(dataDir: string, cfg: Config, sink: OtlpSink, fn: (stack: Stack, deps: Deps, jwtIssuer: string) => Promise<T>): Promise<T> {
  const env = { ...BENCH_LIMITS, ...(cfg.tracing && { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_TRACES_SAMPLER_ARG: String(SAMPLING) }) };
  const stack = await startStack({ dataDir, ports: 'ephemeral', metrics: cfg.metrics, env, nginxAccessLog: false, log: () => {}, ...(cfg.node && { node: cfg.node }) });
  const forget = onInterrupt(() => stack.stop());
  if (cfg.metrics && !cfg.scraped) {
    for (const c of stack.components) if (c.kind === 'prometheus' || c.kind === 'exporter') await stack.kill(c.name, 'SIGTERM');
  }
  try {
    const config = loadConfig({ TOPOLOGY: topologyJson(stack.topology), JWT_SECRET: stack.jwtSecret, ...BENCH_LIMITS, PORT: '0', METRICS_PORT: '0' });
    const deps = await createDeps(config, { log: createLogger('bench-observability', 'error') });
    try {
      return await fn(stack, deps, config.jwtIssuer);
    } finally {
      await deps.close();
    }
  } finally {
    forget();
    await stack.stop();
  }
}

export async function benchObservability(log: (s: string) => void, opts: ObservabilityBenchOptions): Promise<string> {
  const rounds = opts.rounds ?? 3;
  const duration = opts.durationS ?? (opts.quick ? 5 : 10);
  const connections = opts.connections ?? 32;
  // (a) and (b) must not trace because of the environment this bench was started in.
  for (const k of ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_TRACES_SAMPLER_ARG']) {
    if (process.env[k] !== undefined) log(`ignoring ${k} of this environment`);
    delete process.env[k];
  }
  const dataDir = await mkdtemp(join(tmpdir(), 'lb-bench-obs-'));
  const sink = new OtlpSink();
  await sink.start();
  const forget = onInterrupt(() => sink.close().then(() => rm(dataDir, { recursive: true, force: true })));
  const samples: Sampled[] = [];
  const stamps = new Set<string>();
  const configs = opts.preset === 'runtime' ? runtimeConfigs(log) : CONFIGS;
  try {
    log(`seeding ${fmt(PLAYERS)} players (data in ${dataDir})`);
    await withStack(dataDir, { ...configs[0]!, node: undefined }, sink, async (_stack, deps) => {
      await seedPlayers(deps, PLAYERS);
      await waitDrained(deps, 300_000);
    });
    for (let round = 1; round <= rounds; round++) {
      // a b c, then c b a, ...: a drift of the machine within a round does not always penalise the same configuration.
      for (const cfg of round % 2 === 1 ? configs : [...configs].reverse()) {
        log(`-- round ${round}/${rounds}: ${cfg.label} --`);
        stamps.add(buildStamp());
        await withStack(dataDir, cfg, sink, async (stack, deps, issuer) => {
          const tokens = playerTokens(PLAYERS, stack.jwtSecret, issuer);
          const mixes = loadMixes(tokens);
          const groups = groupsOf(stack);
          const worker = stack.components.find((c) => c.kind === 'worker');
          const workerMetrics = worker?.metricsPort ? `http://127.0.0.1:${worker.metricsPort}/metrics` : undefined;
          for (const load of LOADS) {
            let before: Sample[] = [];
            let t0 = 0;
            let busy0 = 0;
            let wall = NaN;
            let busy = NaN;
            let otlp0: OtlpCounts | undefined;
            let lag: Sampled['lag'];
            let backlog: Sampled['backlogPeak'];
            let otlp: OtlpCounts | undefined;
            const window = {
              async start() {
                if (workerMetrics) before = await scrape(workerMetrics);
                if (cfg.tracing) otlp0 = sink.counted();
                busy0 = await machineBusySeconds();
                t0 = performance.now();
              },
              async end() {
                wall = (performance.now() - t0) / 1000;
                busy = (await machineBusySeconds()) - busy0;
                const at = Date.now();
                if (workerMetrics) {
                  const after = await scrape(workerMetrics);
                  const p50 = quantileBetween(before, after, METRIC.persistLag, 0.5);
                  const p99 = quantileBetween(before, after, METRIC.persistLag, 0.99);
                  lag = { p50: p50.value * 1000, p99: p99.value * 1000, events: p50.count };
                }
                if (stack.prometheusUrl && cfg.scraped) backlog = await backlogPeak(stack.prometheusUrl, at, Math.ceil(wall) + 1);
                if (otlp0) {
                  const now = sink.counted();
                  otlp = { requests: now.requests - otlp0.requests, bytes: now.bytes - otlp0.bytes, spans: now.spans - otlp0.spans };
                }
              },
            };
            const r = await run(`${cfg.label}, ${load.key}`, stack.url, groups, { duration, connections, mix: mixes[load.key], window }, log);
            // Other load: the machine's busy time minus what the stack and the load generator (this process) used.
            const ours = (cpuTotal(r) * r.requests) / 1000;
            const s: Sampled = {
              config: cfg.key,
              load: load.key,
              round,
              run: r,
              otherCores: Math.max(0, (busy - ours) / wall),
              ...(lag && { lag }),
              ...(backlog && { backlogPeak: backlog }),
              ...(otlp && { otlp }),
            };
            samples.push(s);
            log(summary(s));
            await waitDrained(deps, 300_000);
          }
        });
      }
    }
  } finally {
    forget();
    await sink.close();
    await rm(dataDir, { recursive: true, force: true });
  }
  if (sink.unparsed > 0) log(`OTLP sink: ${sink.unparsed} bodies were not OTLP JSON (their spans are not counted)`);
  const m = { quick: opts.quick, rounds, duration, connections, rebuilt: stamps.size > 1, scrapeS: DEFAULT_SCRAPE_INTERVAL_S };
  return opts.preset === 'runtime' ? runtimeMarkdown(samples, configs, m) : markdown(samples, m);
}

function loadMixes(tokens: readonly string[]): Record<Load['key'], MixEntry[]> {
  const write: MixEntry = { weight: 30, method: 'POST', paths: ['/score/add'], body: '{"delta":1}', tokens };
  const randomId = () => `p${Math.floor(Math.random() * PLAYERS)}`;
  return {
    writes: [{ ...write, weight: 1 }],
    mix: [
      { weight: 35, method: 'GET', paths: REGIONS.map((r) => `/top?region=${r}&limit=10`) },
      { weight: 35, method: 'GET', paths: Array.from({ length: 20_000 }, () => `/rank/${randomId()}?region=GLOBAL`) },
      write,
    ],
  };
}

function summary(s: Sampled): string {
  const parts = [`other load ${fmt(s.otherCores, 2)} cores`];
  if (s.lag) parts.push(`lag p50 ${fmt(s.lag.p50)} ms p99 ${fmt(s.lag.p99)} ms over ${fmt(s.lag.events)} events`);
  if (s.backlogPeak) parts.push(`backlog peak ${Object.entries(s.backlogPeak).map(([k, v]) => `${k} ${fmt(v)}`).join(', ') || 'n/a'}`);
  if (s.otlp) parts.push(`OTLP ${s.otlp.requests} posts, ${fmt(s.otlp.bytes / 1024)} KiB, ${fmt(s.otlp.spans)} spans`);
  return `   ${parts.join('; ')}`;
}

// ------------------------------------------------------------ markdown ----

const cpuTotal = (r: RunResult) => Object.values(r.cpuMsPerReq).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);

interface MarkdownMeta {
  quick: boolean;
  rounds: number;
  duration: number;
  connections: number;
  rebuilt: boolean;
  scrapeS: number;
}

/** The pieces both write-ups use: samples by configuration and load, each round against its base. */
function tables(samples: readonly Sampled[], configs: readonly Config[]) {
  const first = configs[0]!.key;
  const baseOf = (key: string) => configs.find((c) => c.key === key)?.base ?? first;
  const of = (config: string, load: Load['key']) => samples.filter((s) => s.config === config && s.load === load).sort((a, b) => a.round - b.round);
  /** Each round's run against the same round's run of its base: f(x, base). */
  const paired = (config: string, load: Load['key'], f: (x: RunResult, a: RunResult) => number) =>
    of(config, load).flatMap((s) => {
      const base = of(baseOf(config), load).find((b) => b.round === s.round);
      return base ? [f(s.run, base.run)] : [];
    });
  /** Throughput lost against the same round's base (1 − x/a). */
  const overheads = (config: string, load: Load['key']) => paired(config, load, (x, a) => 1 - x.rps / a.rps);
  const rows = LOADS.flatMap((load) =>
    configs.map((cfg) => {
      const xs = of(cfg.key, load.key);
      const oh = cfg.key === first ? '—' : spread(overheads(cfg.key, load.key).map((x) => 100 * x), 1, '%');
      const cpu = cfg.key === first ? '—' : spread(paired(cfg.key, load.key, (x, a) => 100 * (cpuTotal(x) / cpuTotal(a) - 1)), 1, '%');
      return `| ${load.label} | ${cfg.label} | ${spread(xs.map((s) => s.run.rps))} | ${oh} | ${spread(xs.map((s) => s.run.p50), 1)} | ${spread(xs.map((s) => s.run.p99), 1)} | ${xs.reduce((a, s) => a + s.run.errors + s.run.non2xx, 0)} | ${spread(xs.map((s) => cpuTotal(s.run)), 2)} | ${cpu} | ${spread(xs.map((s) => s.otherCores), 2)} |`;
    }),
  );
  // Where the CPU goes: per component, median over the rounds.
  const groups = [...new Set(samples.flatMap((s) => Object.keys(s.run.cpuMsPerReq)))];
  const cpuRows = LOADS.flatMap((load) =>
    configs.map((cfg) => {
      const xs = of(cfg.key, load.key);
      return `| ${load.key} | ${cfg.label} | ${groups.map((g) => (xs.some((s) => s.run.cpuMsPerReq[g] !== undefined) ? median(xs.map((s) => s.run.cpuMsPerReq[g] ?? NaN)).toFixed(3) : '—')).join(' | ')} | ${median(xs.map((s) => cpuTotal(s.run))).toFixed(3)} |`;
    }),
  );
  const cpuTable = `| load | configuration | ${groups.join(' | ')} | total |
|---|---|${groups.map(() => '---').join('|')}|---|
${cpuRows.join('\n')}`;
  /** The extra CPU per request of x over y, by component (difference of the medians). */
  const delta = (x: string, y: string, load: Load['key']) =>
    groups
      .map((g) => [g, median(of(x, load).map((s) => s.run.cpuMsPerReq[g] ?? 0)) - median(of(y, load).map((s) => s.run.cpuMsPerReq[g] ?? 0))] as const)
      .filter(([, d]) => Math.abs(d) >= 0.005)
      .sort((a, b) => b[1] - a[1])
      .map(([g, d]) => `${g} ${d >= 0 ? '+' : ''}${d.toFixed(3)}`)
      .join(', ') || 'none above 0.005 ms';
  const resultTable = `| load | configuration | req/s | throughput lost vs its base | p50 ms | p99 ms | errors + non-2xx | CPU ms/req | CPU per request vs its base | other load, cores |
|---|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}`;
  return { of, paired, overheads, resultTable, cpuTable, delta };
}

const runHeader = (m: MarkdownMeta, what: string) =>
  `Run: ${new Date().toISOString()} on ${machineLine()}${m.quick ? ' (--quick)' : ''}. ${m.rounds} rounds of ${what}, in this order in odd rounds and reversed in even ones (so a drift within a round does not always favour the same configuration), one sitting; each configuration is a fresh start of the whole stack (3 api-gateways × 3 replicas, worker, 3 Redis, Postgres with fsync on, nginx) on one data directory seeded once with ${fmt(PLAYERS)} players. Load: ${loadTool()}, ${m.connections} connections, ${m.duration} s per run after an unrecorded ${WARM_UP_S} s warm-up with the same mix; the queues are drained between runs.${m.rebuilt ? '\n\n⚠ The services were rebuilt during this sitting (their sources changed): not every round ran the same code.' : ''}`;

const HOW_TO_READ = `Figures are median (min–max) over the rounds. "vs its base" compares a run with the run of its base configuration in the same round (throughput lost: 1 − x/base), the only comparison that holds on this VM, whose speed drifts by up to 50% within an hour. CPU ms/req is the user + system time of every stack process and of the load generator (from /proc) per request; "other load" is the rest of the machine's busy time during the run (other users of this VM), in cores.`;

/** The runtime A/B's write-up: Node 20 against Node 26, and tracing at 10% on each. */
function runtimeMarkdown(samples: readonly Sampled[], configs: readonly Config[], m: MarkdownMeta): string {
  const t = tables(samples, configs);
  const [a, b, c, d] = configs;
  const change = (x: string, load: Load['key']) => spread(t.paired(x, load, (r, base) => 100 * (r.rps / base.rps - 1)), 1, '%');
  const targets = LOADS.map((load) => {
    const oh = median(t.overheads(d!.key, load.key));
    return `| tracing at ${SAMPLING * 100}% on ${b!.label.slice(4)} (d vs b), ${load.key}: throughput lost < 10% | ${fmt(100 * oh, 1)}% | ${Number.isFinite(oh) ? (oh < 0.1 ? '✅' : '❌') : '(not run)'} |`;
  });
  return `## Runtime: Node ${OLD_NODE} against Node ${process.versions.node}

${runHeader(m, '(a), (b), (c), (d)')} Metrics are off in every configuration (METRICS_PORT=0, no exporters, no Prometheus); only the Node.js binary of the Node services (gateways, replicas, worker) and the tracing environment differ. Written by \`npm run bench -- --only runtime\`; Node ${OLD_NODE} comes from the npm registry into .runtime/ like the project's own.

- ${a!.label}: the stack on the runtime this project ran on until issue 19 (end of life 2026-04-30).
- ${b!.label}: the same stack on the project's Node (\`.node-version\`).
- ${c!.label} and ${d!.label}: each with OTEL_EXPORTER_OTLP_ENDPOINT pointing at the bench's OTLP/HTTP sink and OTEL_TRACES_SAMPLER_ARG=${SAMPLING}; (c) is compared with (a), (d) with (b).

${HOW_TO_READ}

${t.resultTable}

Throughput of ${b!.label.slice(4)} as a change against ${a!.label.slice(4)} in the same round (b/a − 1; positive = faster): writes ${change(b!.key, 'writes')}, mix ${change(b!.key, 'mix')}. CPU per request of (b) against (a): writes ${spread(t.paired(b!.key, 'writes', (r, base) => 100 * (cpuTotal(r) / cpuTotal(base) - 1)), 1, '%')}, mix ${spread(t.paired(b!.key, 'mix', (r, base) => 100 * (cpuTotal(r) / cpuTotal(base) - 1)), 1, '%')}.

| target | measured (median) | |
|---|---|---|
${targets.join('\n')}

CPU milliseconds per request by component (median over the rounds):

${t.cpuTable}

Where the CPU moves (difference of the medians above, ms per request):
${LOADS.flatMap((load) => [
  `- ${load.key}, (b) − (a): ${t.delta(b!.key, a!.key, load.key)}`,
  `- ${load.key}, (c) − (a): ${t.delta(c!.key, a!.key, load.key)}`,
  `- ${load.key}, (d) − (b): ${t.delta(d!.key, b!.key, load.key)}`,
]).join('\n')}`;
}

function markdown(samples: readonly Sampled[], m: MarkdownMeta): string {
  const { of, paired, overheads, resultTable, cpuTable, delta } = tables(samples, CONFIGS);
  const cpuChange = (cfg: string, load: Load['key']) => median(paired(cfg, load, (x, a) => cpuTotal(x) / cpuTotal(a) - 1));
  const mark = (v: number, max: number) => (Number.isFinite(v) ? (v < max ? '✅' : '❌') : '(not run)');
  const targets = LOADS.flatMap((load) => {
    const cpu = cpuChange('metrics', load.key);
    const oh = median(overheads('tracing', load.key));
    return [
      `| metrics (b vs a), ${load.key}: CPU per request up < ${MAX_METRICS_CPU * 100}% | ${fmt(100 * cpu, 1)}% | ${mark(cpu, MAX_METRICS_CPU)} |`,
      `| tracing at ${SAMPLING * 100}% (c vs b), ${load.key}: throughput lost < ${MAX_TRACING_LOSS * 100}% | ${fmt(100 * oh, 1)}% | ${mark(oh, MAX_TRACING_LOSS)} |`,
    ];
  });
  const lagRows = LOADS.flatMap((load) =>
    CONFIGS.filter((c) => c.metrics).map((cfg) => {
      const xs = of(cfg.key, load.key);
      const shards = [...new Set(xs.flatMap((s) => Object.keys(s.backlogPeak ?? {})))].sort();
      const peaks = shards.map((sh) => `${sh} ${spread(xs.map((s) => s.backlogPeak?.[sh] ?? NaN))}`).join(', ') || 'n/a';
      return `| ${load.key} | ${cfg.label} | ${spread(xs.map((s) => s.lag?.p50 ?? NaN))} | ${spread(xs.map((s) => s.lag?.p99 ?? NaN))} | ${spread(xs.map((s) => s.lag?.events ?? NaN))} | ${peaks} |`;
    }),
  );
  const otlpLines = LOADS.map((load) => {
    const xs = of('tracing', load.key).filter((s) => s.otlp);
    if (xs.length === 0) return `- ${load.key}: not run`;
    const perReq = xs.map((s) => s.otlp!.spans / s.run.requests);
    return `- ${load.key}: ${spread(xs.map((s) => s.otlp!.requests / m.duration), 1)} OTLP posts/s, ${spread(xs.map((s) => s.otlp!.bytes / 1024 / m.duration))} KiB/s, ${spread(perReq, 2)} spans exported per request`;
  });
  const deltaLines = LOADS.flatMap((load) => [
    `- ${load.key}, (b) − (a): ${delta('metrics', 'off', load.key)} ms per request`,
    `- ${load.key}, (c) − (b): ${delta('tracing', 'metrics', load.key)} ms per request`,
  ]);
  return `## Observability overhead

${runHeader(m, '(a), (b), (c)')} Prometheus and the 5 exporters run in (b) and (c).

- (a) off: \`metrics: false\` (METRICS_PORT=0 everywhere, no exporters, no Prometheus) and no OTEL_EXPORTER_OTLP_ENDPOINT: the baseline.
- (b) metrics: the default of \`npm start\`: every Node service serves /metrics, Prometheus scrapes every target every ${m.scrapeS} s and evaluates the recording and alerting rules.
- (c) metrics + tracing: (b) with OTEL_EXPORTER_OTLP_ENDPOINT pointing at an OTLP/HTTP sink run by the bench (answers 200 to every POST /v1/traces, counts requests, bytes and spans) and OTEL_TRACES_SAMPLER_ARG=${SAMPLING}, compared with (b) of the same round (so it measures tracing alone).

${HOW_TO_READ}

${resultTable}

| target | measured (median) | |
|---|---|---|
${targets.join('\n')}

Persistence lag and backlog, read from the metrics: the lag is the quantile of the worker's \`${METRIC.persistLag}\` histogram between two scrapes of its /metrics right before and right after the run (buckets summed over shards, interpolated as \`histogram_quantile\` does); the backlog is \`max by (shard) (max_over_time(${METRIC.backlog}[<run>s]))\` from the stack's Prometheus at the end of the run (so the peak of its samples, one every ${m.scrapeS} s).

| load | configuration | lag p50 ms | lag p99 ms | events persisted | peak backlog by shard, events |
|---|---|---|---|---|---|
${lagRows.join('\n')}

OTLP export in (c), during the measured runs:
${otlpLines.join('\n')}

CPU milliseconds per request by component (median over the rounds; exporter and prometheus exist in (b) and (c) only):

${cpuTable}

Where the extra CPU goes (difference of the medians above, ms per request):
${deltaLines.join('\n')}

Levers, when a target is missed: see "Observability: analysis" below this section (written by hand; the figures above are rewritten by every run).`;
}
