/**
 * Prometheus metrics: the names every process exposes (the contract the
 * scrape config, the recording and alerting rules, the Grafana dashboard
 * and docs/OPERATIONS.md are written against), the registry, and the
 * internal listener that serves `GET /metrics`.
 *
 * prom-client rather than the OpenTelemetry metrics SDK: it is what
 * Prometheus itself documents for Node, it exposes the text format
 * directly (no exporter pipeline in between), its default collectors give
 * process CPU, memory, GC and event-loop lag, and its per-call cost is a
 * label check and a map lookup (about 1.7% of a replica's CPU under load,
 * with our recording code, in a profile: docs/BENCHMARKS.md).
 *
 * `METRICS_PORT=0` turns metrics off in that process: no listener, and the
 * recorders are no-ops, so "off" costs nothing (the bench measures both).
 *
 * Label values are bounded: route templates (never raw paths), regions and
 * shards from the topology, outcome codes from a fixed list. No user ids.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import client from 'prom-client';
import { intKey, stringKey, type ConfigKey } from './config.js';
import type { Logger } from './logger.js';

/** Every metric name, once. Prefix `lb_`; units in the name as Prometheus asks. */
export const METRIC = {
  // HTTP, gateway and service (label `service` is the job; route is a template)
  httpDuration: 'lb_http_request_duration_seconds',
  // Gateway upstreams
  upstreamAttempts: 'lb_gateway_upstream_attempts_total',
  upstreamRetries: 'lb_gateway_upstream_retries_total',
  upstreamFailovers: 'lb_gateway_upstream_failovers_total',
  replicaUp: 'lb_gateway_replica_up',
  // Writes and the write path (service)
  writes: 'lb_writes_total',
  envelopeEvents: 'lb_relay_envelope_events',
  topCacheHits: 'lb_top_cache_hits_total',
  topCacheMisses: 'lb_top_cache_misses_total',
  topCacheInvalidations: 'lb_top_cache_invalidations_total',
  // Live pushes (SSE), per replica; kind = top | me
  liveChannels: 'lb_live_channels',
  livePublications: 'lb_live_publications_total',
  redisDuration: 'lb_redis_command_duration_seconds',
  redisErrors: 'lb_redis_errors_total',
  // Replication of the shards behind Sentinel (service, per shard)
  redisReplicas: 'lb_redis_replicas_online',
  redisReplicaLag: 'lb_redis_replica_lag_seconds',
  redisFailovers: 'lb_redis_failovers_total',
  pgDuration: 'lb_pg_query_duration_seconds',
  pgErrors: 'lb_pg_errors_total',
  // Persistence (worker)
  backlog: 'lb_backlog_events',
  persistLag: 'lb_persistence_lag_seconds',
  batchEvents: 'lb_worker_batch_events',
  jobs: 'lb_worker_jobs_total',
  deadLetters: 'lb_dead_letter_jobs',
} as const;

/** Outcomes of a score write as `lb_writes_total{outcome}` counts them: `accepted`, or the error code it was refused with. */
export const WRITE_ACCEPTED = 'accepted';

/** Latency buckets, seconds: 0.5 ms to 10 s. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Persistence lag buckets, seconds: 5 ms to 60 s. */
export const LAG_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Batch and envelope sizes, events. */
export const SIZE_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

/** This process's METRICS_PORT key (the default differs per service so they can share a host). */
export function metricsPortKey(defaultPort: number): ConfigKey<number> {
  return intKey('METRICS_PORT', 'Internal port of GET /metrics (Prometheus text format); never put it behind the public listener. 0 = metrics off (no listener, nothing recorded).', {
    default: defaultPort,
    min: 0,
    max: 65535,
  });
}
export const METRICS_HOST = stringKey('METRICS_HOST', 'Address of the /metrics listener: loopback or a private network only.', { default: '127.0.0.1' });

export type Registry = client.Registry;
export type Counter = client.Counter<string>;
export type Histogram = client.Histogram<string>;
export type Gauge = client.Gauge<string>;

/**
 * A process's metrics: a registry with the default process collectors
 * (when enabled) and factories for its own metrics. Disabled, every
 * factory still returns a working object on a throwaway registry, and
 * {@link Metrics.enabled} lets hot paths skip the call entirely.
 */
export class Metrics {
  readonly registry: Registry;
  /** Where metrics are registered: the registry, or (off) one nobody reads. */
  private readonly sink: Registry;
  constructor(
    readonly enabled: boolean,
    /** `service` label on every series: gateway, leaderboard-service, worker. */
    readonly service: string,
  ) {
    this.registry = new client.Registry();
    this.sink = enabled ? this.registry : new client.Registry();
    if (enabled) {
      this.registry.setDefaultLabels({ service });
      client.collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 20 });
    }
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return new client.Counter({ name, help, labelNames, registers: [this.sink] });
  }

  histogram(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]): Histogram {
    return new client.Histogram({ name, help, labelNames, buckets: [...buckets], registers: [this.sink] });
  }

  /** A gauge; `collect` (when given) runs at every scrape to set its value. */
  gauge(name: string, help: string, labelNames: readonly string[] = [], collect?: (g: Gauge) => void | Promise<void>): Gauge {
    return new client.Gauge({
      name,
      help,
      labelNames,
      registers: [this.sink],
      ...(collect ? { collect(this: Gauge) { return collect(this); } } : {}),
    });
  }

  /** The text exposition. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/**
 * A label-set cache over a counter or histogram: `get('GET', '/top', '200')`
 * returns the child built once for those values, so a call does not build
 * and check a label object first (prom-client still validates and hashes
 * the child's labels on each observation).
 */
export class Children<T extends { labels(...values: string[]): unknown }> {
  private readonly map = new Map<string, ReturnType<T['labels']>>();
  constructor(private readonly metric: T) {}
  get(...values: string[]): ReturnType<T['labels']> {
    const key = values.join('\u0000');
    let c = this.map.get(key);
    if (c === undefined) {
      c = this.metric.labels(...values) as ReturnType<T['labels']>;
      this.map.set(key, c);
    }
    return c;
  }
}

/**
 * HTTP request metrics: one histogram by route template, method and status
 * (its `_count` is the request counter). `observe` is called once an answer
 * has been sent.
 */
export class HttpMetrics {
  private readonly children: Children<Histogram>;
  constructor(m: Metrics) {
    this.children = new Children(
      m.histogram(METRIC.httpDuration, 'HTTP requests by route template, method and status, and their latency (seconds, request in to answer sent).', ['route', 'method', 'status'], LATENCY_BUCKETS),
    );
  }
  observe(route: string, method: string, status: number, seconds: number): void {
    this.children.get(route, method, String(status)).observe(seconds);
  }

  /**
   * Observes the request once its answer has been sent (its route template
   * from the path it arrived with). A live stream's request (`/live`,
   * `/boards/:board/live`, `/me/live`) is answered at once too: nginx holds
   * the stream itself (the replica answers with an X-Accel-Redirect).
   */
  track(req: IncomingMessage, res: ServerResponse): void {
    const start = process.hrtime.bigint();
    const route = requestRoute(req);
    const method = req.method === 'GET' || req.method === 'POST' || req.method === 'HEAD' ? req.method : 'other';
    res.once('finish', () => this.observe(route, method, res.statusCode, secondsSince(start)));
  }
}

/** Seconds since a `process.hrtime.bigint()` reading. */
export function secondsSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/**
 * Serves `GET /metrics` (and nothing else) on the internal port. Resolves
 * with the listening server; `port` 0 in the config means metrics are off
 * and nothing listens (the caller does not call this).
 */
export function startMetricsServer(m: Metrics, host: string, port: number, log: Logger): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'Content-Type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify({ error: 'not_found', message: 'only GET /metrics is served here' }));
      return;
    }
    m.text().then(
      (text) => {
        res.writeHead(200, { 'Content-Type': m.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => {
        log.error('metrics collection failed', { err: err as Error });
        res.writeHead(500, { 'Content-Type': 'application/json; charset=utf-8' });
        res.end(JSON.stringify({ error: 'internal', message: 'metrics collection failed' }));
      },
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/** The route template of a public API path, for labels (never the raw path): `/rank/:userId`, `/boards/:board/top`, ... or `other`. */
const TEMPLATES: readonly [RegExp, string][] = [
  [/^\/top$/, '/top'],
  [/^\/score$/, '/score'],
  [/^\/score\/(add|create|update)$/, '/score/$1'],
  [/^\/score\/(rank|around)\/[^/]+$/, '/score/$1/:userId'],
  [/^\/(rank|around|history)\/[^/]+$/, '/$1/:userId'],
  [/^\/auth\/(register|login)$/, '/auth/$1'],
  [/^\/boards$/, '/boards'],
  [/^\/boards\/[^/]+$/, '/boards/:id'],
  [/^\/boards\/[^/]+\/(top|scores|periods|ranks|live)$/, '/boards/:board/$1'],
  [/^\/live$/, '/live'],
  [/^\/me\/(live|live-ticket)$/, '/me/$1'],
  [/^\/boards\/[^/]+\/(rank|around)\/[^/]+$/, '/boards/:board/$1/:userId'],
  [/^\/admin\/boards(\/[^/]+)?$/, '/admin/boards'],
  [/^\/health(\/live)?$/, '/health'],
];

const ROUTE = Symbol('lb.route');

/**
 * The route template of a request's path as it arrived, computed once per
 * request (metrics, the SERVER span and the gateway's attempt spans all
 * name the request by it).
 */
export function requestRoute(req: IncomingMessage & { [ROUTE]?: string }): string {
  let route = req[ROUTE];
  if (route === undefined) {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    route = routeTemplate(q < 0 ? url : url.slice(0, q));
    req[ROUTE] = route;
  }
  return route;
}

export function routeTemplate(path: string): string {
  for (const [re, t] of TEMPLATES) {
    const m = re.exec(path);
    if (m) return t.includes('$1') ? t.replace('$1', m[1]!) : t;
  }
  return 'other';
}

/**
 * Latency and errors of calls to a store (Redis or Postgres), per shard and
 * operation: `observe` once per call with its duration and whether it failed.
 */
export class CallMetrics {
  private readonly duration: Children<Histogram>;
  private readonly errors: Children<Counter>;
  constructor(m: Metrics, durationName: string, errorsName: string, store: string) {
    this.duration = new Children(m.histogram(durationName, `${store} calls by shard and operation, and their latency (seconds).`, ['shard', 'op'], LATENCY_BUCKETS));
    this.errors = new Children(m.counter(errorsName, `${store} calls that failed (error reply, timeout, connection lost), by shard and operation.`, ['shard', 'op']));
  }
  observe(shard: string, op: string, seconds: number, failed: boolean): void {
    this.duration.get(shard, op).observe(seconds);
    if (failed) this.errors.get(shard, op).inc();
  }
  /** Runs `fn` and observes it. */
  async time<T>(shard: string, op: string, fn: () => Promise<T>): Promise<T> {
    const start = process.hrtime.bigint();
    let failed = true;
    try {
      const r = await fn();
      failed = false;
      return r;
    } finally {
      this.observe(shard, op, secondsSince(start), failed);
    }
  }
}

/** Postgres call metrics of a process (`lb_pg_query_duration_seconds`, `lb_pg_errors_total`). */
export function pgCallMetrics(m: Metrics): CallMetrics {
  return new CallMetrics(m, METRIC.pgDuration, METRIC.pgErrors, 'Postgres');
}

/** Redis call metrics of a process (`lb_redis_command_duration_seconds`, `lb_redis_errors_total`). */
export function redisCallMetrics(m: Metrics): CallMetrics {
  return new CallMetrics(m, METRIC.redisDuration, METRIC.redisErrors, 'Redis');
}
