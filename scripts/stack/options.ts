/**
 * What a stack is made of and where it listens: the options of
 * {@link startStack}, their defaults, the `npm start` command line and
 * environment that produce them, and the restart policy (how soon and how
 * often a component that died is started again).
 */
import { isAbsolute, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type RedisEndpoint, type RedisNode, type Topology } from '@lb/common/contracts';
import { DEFAULT_PORTS, DEFAULT_TOPOLOGY, type LogLevel } from '@lb/common/platform';
import type { LiveStreamSettings } from './nginx.js';
import { DEFAULT_DATA_DIR } from './paths.js';

/**
 * Ports of the stack. A number > 0 is used as is; 0 picks a free port. For
 * the `*Base` keys instance i (0-based) gets `base + i`, or its own free
 * port when the base is 0.
 */
export interface StackPorts {
  /**
   * One per shard of {@link DEFAULT_TOPOLOGY}, in its order (na, eu, asia):
   * the shard's Redis (with replicas, the node that starts as its primary,
   * `redis-<shard>`). Default 6391, 6392, 6393.
   */
  readonly redis?: readonly number[];
  /** With replicas: the node of each shard that starts as its replica (`redis-<shard>-b`), in shard order. Default 6401, 6402, 6403. */
  readonly redisReplica?: readonly number[];
  /** With replicas: the three Redis Sentinels (`sentinel-1..3`) that watch every shard. Default 26391, 26392, 26393. */
  readonly sentinels?: readonly number[];
  /** Default 5442. */
  readonly postgres?: number;
  /** leaderboard-service replicas. Default 5001. */
  readonly serviceBase?: number;
  /** api-gateway instances. Default 4000. */
  readonly gatewayBase?: number;
  /** worker-service /health endpoints. Default 5101. */
  readonly workerHealthBase?: number;
  /** Default 8080. */
  readonly nginx?: number;
  /**
   * `GET /metrics` of the Node services (METRICS_PORT), one port each in
   * start order: replicas, then workers, then gateways (9101-9103, 9104,
   * 9105-9107 by default). Unused with `metrics: false`, like the ports below.
   */
  readonly metricsBase?: number;
  /** Prometheus (UI and API). Default 9090. */
  readonly prometheus?: number;
  /** One prometheus-redis-exporter per shard, in shard order. Default 9121. */
  readonly redisExporterBase?: number;
  /** prometheus-postgres-exporter. Default 9187. */
  readonly postgresExporter?: number;
  /** prometheus-nginx-exporter. Default 9113. */
  readonly nginxExporter?: number;
  /** nginx's `stub_status`, on a server of its own on 127.0.0.1 (what the nginx exporter reads). Default 8090. */
  readonly nginxStatus?: number;
  /** nginx's internal live server on 127.0.0.1: nchan's publisher (the replicas' LIVE_PUBLISH_URL) and status. Default 8091. */
  readonly nginxLive?: number;
}

/** Ports of `npm start`. */
export const DEFAULT_STACK_PORTS: Required<StackPorts> = Object.freeze({
  redis: DEFAULT_PORTS.redis,
  redisReplica: Object.freeze([6401, 6402, 6403]),
  sentinels: Object.freeze([26391, 26392, 26393]),
  postgres: DEFAULT_PORTS.postgres,
  serviceBase: 5001,
  gatewayBase: 4000,
  workerHealthBase: 5101,
  nginx: 8080,
  metricsBase: 9101,
  prometheus: 9090,
  redisExporterBase: 9121,
  postgresExporter: 9187,
  nginxExporter: 9113,
  nginxStatus: 8090,
  nginxLive: 8091,
});

/** Every port picked from the free ones: for tests and benchmarks next to a running `npm start`. */
export const EPHEMERAL_PORTS: Required<StackPorts> = Object.freeze({
  redis: DEFAULT_PORTS.redis.map(() => 0),
  redisReplica: DEFAULT_PORTS.redis.map(() => 0),
  sentinels: [0, 0, 0],
  postgres: 0,
  serviceBase: 0,
  gatewayBase: 0,
  workerHealthBase: 0,
  nginx: 0,
  metricsBase: 0,
  prometheus: 0,
  redisExporterBase: 0,
  postgresExporter: 0,
  nginxExporter: 0,
  nginxStatus: 0,
  nginxLive: 0,
});

/**
 * How the stack restarts a component that died without being asked to. Each
 * component has its own budget: see {@link RestartBudget}.
 */
export interface RestartPolicy {
  /** Restarts of one component allowed within {@link windowMs}; one more crash leaves it down. Default 5. */
  readonly maxRestarts: number;
  /** The sliding window the restarts are counted in. Default 60 s. */
  readonly windowMs: number;
  /** Delay before a first restart, doubled for each earlier restart still in the window. Default 500 ms. */
  readonly backoffMs: number;
  /** Upper bound of that delay. Default 5 s (or backoffMs, if larger). */
  readonly maxBackoffMs: number;
}

/** The restart policy of `npm start` and of {@link startStack} unless told otherwise. */
export const DEFAULT_RESTART_POLICY: RestartPolicy = Object.freeze({
  maxRestarts: 5,
  windowMs: 60_000,
  backoffMs: 500,
  maxBackoffMs: 5_000,
});

/** The Node services of the stack. */
export type NodeKind = 'service' | 'worker' | 'gateway';

/**
 * Which code the Node services run:
 * - `'dist'`: the compiled JavaScript, `node <workspace>/dist/index.js`, as
 *   production runs it (built first when missing or older than the sources);
 * - `'source'`: the TypeScript sources, `node --conditions=development
 *   --import tsx <workspace>/src/index.ts`, no build needed.
 */
export type NodeCode = 'dist' | 'source';

/** The values of {@link NodeCode}, for validation. */
export const NODE_CODES: readonly NodeCode[] = Object.freeze(['dist', 'source']);

/** Options of {@link startStack}; everything is optional. */
export interface StartStackOptions {
  /** Data, logs and state (stack.json, jwt-secret). Default `<repo>/.data`. Created if missing. */
  readonly dataDir?: string;
  /** leaderboard-service replicas (default 3). */
  readonly replicas?: number;
  /**
   * Redis replication (default true): every shard is a primary with one
   * replica, and three Sentinels watch all shards and promote the replica
   * when a primary dies; the services find the primaries through the
   * Sentinels (a `sentinel` topology). false (`npm start -- --no-replicas`,
   * REDIS_REPLICAS=0): one plain redis-server per shard.
   */
  readonly redisReplicas?: boolean;
  /** api-gateway instances (default 3). */
  readonly gateways?: number;
  /** worker-service processes (default 1); the shards are dealt out round-robin, see {@link workerShardAssignment}. */
  readonly workers?: number;
  /** `'ephemeral'` = {@link EPHEMERAL_PORTS}; missing keys take {@link DEFAULT_STACK_PORTS}. */
  readonly ports?: StackPorts | 'ephemeral';
  /** Default: `<dataDir>/jwt-secret`, generated on first start. */
  readonly jwtSecret?: string;
  /** LOG_LEVEL of the Node services (default: $LOG_LEVEL or info). */
  readonly logLevel?: LogLevel;
  /** Extra environment for every Node service (applied before the per-instance PORT, ids…). */
  readonly env?: Readonly<Record<string, string>>;
  /** Extra environment per kind of Node service, applied after {@link env}. */
  readonly envFor?: Readonly<Partial<Record<NodeKind, Readonly<Record<string, string>>>>>;
  /** Extra Node.js flags per kind of Node service, before the entry point (the benchmark's `--profile` passes `--cpu-prof`). */
  readonly nodeArgs?: Readonly<Partial<Record<NodeKind, readonly string[]>>>;
  /**
   * Which code the Node services run (default `'dist'`: what ships, so
   * `npm start` and the benchmark run it; tests that must not depend on a
   * build pass `'source'`). See {@link NodeCode}.
   */
  readonly code?: NodeCode;
  /**
   * The Node.js binary of the Node services (default: the one running the
   * stack, the project's Node 26). The benchmark's runtime A/B starts the
   * same stack on another.
   */
  readonly node?: string;
  /** Copy every component's log lines to stdout with a `name |` prefix (default false). */
  readonly echo?: boolean;
  /** Progress and failure messages of the stack itself (default: stderr). */
  readonly log?: (line: string) => void;
  /**
   * true (default): any component that does not come up healthy fails the
   * start (everything started is stopped, the error has its log tail).
   * false (`npm start`): report it loudly and keep the rest running.
   */
  readonly strict?: boolean;
  /** Postgres without fsync: for throwaway test data only (default false). */
  readonly postgresFast?: boolean;
  /** nginx access log in `<dataDir>/logs/nginx-access.log` (default true; benchmarks may turn it off). */
  readonly nginxAccessLog?: boolean;
  /** The live streams nginx holds: heartbeat, `retry:`, streams per client address (defaults: scripts/stack/nginx.ts DEFAULT_LIVE). */
  readonly live?: Partial<LiveStreamSettings>;
  /** How long each component may take to become healthy (default 60 s). */
  readonly healthTimeoutMs?: number;
  /**
   * Restarting a component that dies on its own (crash, kill by PID from
   * outside), on the same port with the same data: keys override
   * {@link DEFAULT_RESTART_POLICY}; false only reports the death. Stops and
   * kills through the {@link Stack} API are never restarted.
   */
  readonly restart?: Partial<RestartPolicy> | false;
  /** Aborting stops a start in progress (what was started is stopped, the promise rejects). */
  readonly signal?: AbortSignal;
  /**
   * Metrics (default true): every Node service serves `GET /metrics` on its
   * own port (METRICS_PORT, see {@link StackPorts.metricsBase}), and the stack
   * runs the Redis, Postgres and nginx exporters and a Prometheus that scrapes
   * them all. false (`npm start -- --no-metrics`): METRICS_PORT=0 everywhere,
   * no exporters, no Prometheus.
   */
  readonly metrics?: boolean;
  /** Prometheus's scrape and rule evaluation interval, seconds (default {@link DEFAULT_SCRAPE_INTERVAL_S}). */
  readonly scrapeIntervalSeconds?: number;
}

/** Prometheus scrapes every 5 s unless told otherwise. */
export const DEFAULT_SCRAPE_INTERVAL_S = 5;

/** {@link StartStackOptions} with every default applied. */
export interface ResolvedStackOptions {
  readonly dataDir: string;
  readonly replicas: number;
  readonly redisReplicas: boolean;
  readonly gateways: number;
  readonly workers: number;
  readonly ports: Required<StackPorts>;
  readonly strict: boolean;
  readonly echo: boolean;
  readonly healthTimeoutMs: number;
  /** false: restarts are off. */
  readonly restart: RestartPolicy | false;
  readonly code: NodeCode;
  readonly node: string;
  readonly metrics: boolean;
  readonly scrapeIntervalSeconds: number;
}

const MAX_INSTANCES = 32;

function count(name: string, value: number | undefined, def: number, min: number): number {
  const n = value ?? def;
  if (!Number.isInteger(n) || n < min || n > MAX_INSTANCES) throw new Error(`${name} must be an integer in ${min}..${MAX_INSTANCES}, got ${n}`);
  return n;
}

function nodeCode(name: string, value: string): NodeCode {
  if (!(NODE_CODES as readonly string[]).includes(value)) throw new Error(`${name} must be ${NODE_CODES.join(' or ')}, got "${value}"`);
  return value as NodeCode;
}

function port(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 65535) throw new Error(`${name} must be a port 0..65535, got ${value}`);
  return value;
}

/** Applies defaults and checks ranges; throws naming the bad option. */
export function resolveStackOptions(opts: StartStackOptions): ResolvedStackOptions {
  const given = opts.ports === 'ephemeral' ? EPHEMERAL_PORTS : { ...DEFAULT_STACK_PORTS, ...opts.ports };
  const shardCount = DEFAULT_TOPOLOGY.shards.length;
  if (given.redis.length !== shardCount) throw new Error(`ports.redis must list ${shardCount} ports (one per shard), got ${given.redis.length}`);
  if (given.redisReplica.length !== shardCount) {
    throw new Error(`ports.redisReplica must list ${shardCount} ports (one per shard), got ${given.redisReplica.length}`);
  }
  if (given.sentinels.length !== SENTINELS) throw new Error(`ports.sentinels must list ${SENTINELS} ports, got ${given.sentinels.length}`);
  const ports: Required<StackPorts> = Object.freeze({
    redis: given.redis.map((p, i) => port(`ports.redis[${i}]`, p)),
    redisReplica: given.redisReplica.map((p, i) => port(`ports.redisReplica[${i}]`, p)),
    sentinels: given.sentinels.map((p, i) => port(`ports.sentinels[${i}]`, p)),
    postgres: port('ports.postgres', given.postgres),
    serviceBase: port('ports.serviceBase', given.serviceBase),
    gatewayBase: port('ports.gatewayBase', given.gatewayBase),
    workerHealthBase: port('ports.workerHealthBase', given.workerHealthBase),
    nginx: port('ports.nginx', given.nginx),
    metricsBase: port('ports.metricsBase', given.metricsBase),
    prometheus: port('ports.prometheus', given.prometheus),
    redisExporterBase: port('ports.redisExporterBase', given.redisExporterBase),
    postgresExporter: port('ports.postgresExporter', given.postgresExporter),
    nginxExporter: port('ports.nginxExporter', given.nginxExporter),
    nginxStatus: port('ports.nginxStatus', given.nginxStatus),
    nginxLive: port('ports.nginxLive', given.nginxLive),
  });
  for (const [key, value] of Object.entries(opts.live ?? {})) {
    if (!Number.isInteger(value) || value < 1 || value > 86_400_000) throw new Error(`live.${key} must be a positive integer, got ${value}`);
  }
  const scrapeIntervalSeconds = opts.scrapeIntervalSeconds ?? DEFAULT_SCRAPE_INTERVAL_S;
  if (!Number.isInteger(scrapeIntervalSeconds) || scrapeIntervalSeconds < 1 || scrapeIntervalSeconds > 300) {
    throw new Error(`scrapeIntervalSeconds must be an integer in 1..300, got ${scrapeIntervalSeconds}`);
  }
  const resolved: ResolvedStackOptions = Object.freeze({
    dataDir: resolve(opts.dataDir ?? DEFAULT_DATA_DIR),
    replicas: count('replicas', opts.replicas, 3, 1),
    redisReplicas: opts.redisReplicas ?? true,
    gateways: count('gateways', opts.gateways, 3, 1),
    workers: count('workers', opts.workers, 1, 0),
    ports,
    strict: opts.strict ?? true,
    echo: opts.echo ?? false,
    healthTimeoutMs: opts.healthTimeoutMs ?? 60_000,
    restart: opts.restart === false ? false : resolveRestartPolicy(opts.restart ?? {}),
    code: nodeCode('code', opts.code ?? 'dist'),
    node: opts.node ?? process.execPath,
    metrics: opts.metrics ?? true,
    scrapeIntervalSeconds,
  });
  assertDistinctPorts(resolved);
  return resolved;
}

/** Applies {@link DEFAULT_RESTART_POLICY} to the keys not given and checks ranges; throws naming the bad key. */
export function resolveRestartPolicy(given: Partial<RestartPolicy>): RestartPolicy {
  const d = DEFAULT_RESTART_POLICY;
  const backoffMs = given.backoffMs ?? d.backoffMs;
  const policy: RestartPolicy = Object.freeze({
    maxRestarts: given.maxRestarts ?? d.maxRestarts,
    windowMs: given.windowMs ?? d.windowMs,
    backoffMs,
    maxBackoffMs: given.maxBackoffMs ?? Math.max(d.maxBackoffMs, backoffMs),
  });
  const check = (key: keyof RestartPolicy, min: number, max: number): void => {
    const v = policy[key];
    if (!Number.isInteger(v) || v < min || v > max) throw new Error(`restart.${key} must be an integer in ${min}..${max}, got ${v}`);
  };
  check('maxRestarts', 0, 1000);
  check('windowMs', 1, 24 * 3_600_000);
  check('backoffMs', 0, 3_600_000);
  check('maxBackoffMs', policy.backoffMs, 3_600_000);
  return policy;
}

/**
 * The restarts one component has left under a {@link RestartPolicy}. A
 * component that crashed is restarted after a delay that doubles with each
 * restart it already had within the window (so a crash loop slows down, and
 * a component that ran fine for a whole window starts over at the base
 * delay); once it had `maxRestarts` restarts within the window, the next
 * crash is the one it does not come back from.
 */
export class RestartBudget {
  /** When each restart still inside the window was granted, oldest first. */
  private recent: number[] = [];

  constructor(
    private readonly policy: RestartPolicy,
    /** Milliseconds on any monotonic-enough scale; injectable for tests. */
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Called on a crash: grants a restart and returns its delay in ms, or
   * returns undefined when the budget is spent (then nothing is recorded and
   * later calls keep answering undefined until the window moves on).
   */
  next(): number | undefined {
    const t = this.prune();
    if (this.recent.length >= this.policy.maxRestarts) return undefined;
    const delay = Math.min(this.policy.backoffMs * 2 ** this.recent.length, this.policy.maxBackoffMs);
    this.recent.push(t);
    return delay;
  }

  /** Restarts granted within the current window. */
  inWindow(): number {
    this.prune();
    return this.recent.length;
  }

  /** Forgets every restart: a deliberate restart starts the count over. */
  reset(): void {
    this.recent = [];
  }

  private prune(): number {
    const t = this.now();
    this.recent = this.recent.filter((at) => t - at < this.policy.windowMs);
    return t;
  }
}

/** The fixed (non-zero) ports the stack will listen on, by component name. */
export function fixedPorts(o: ResolvedStackOptions): Array<{ name: string; port: number }> {
  const out: Array<{ name: string; port: number }> = [];
  const add = (name: string, p: number): void => {
    if (p > 0) out.push({ name, port: p });
  };
  DEFAULT_TOPOLOGY.shards.forEach((s, i) => add(redisNodeName(s.id, 0), o.ports.redis[i]!));
  if (o.redisReplicas) {
    DEFAULT_TOPOLOGY.shards.forEach((s, i) => add(redisNodeName(s.id, 1), o.ports.redisReplica[i]!));
    o.ports.sentinels.forEach((p, i) => add(sentinelName(i), p));
  }
  add('postgres', o.ports.postgres);
  for (let i = 0; i < o.replicas; i++) add(serviceName(i), o.ports.serviceBase && o.ports.serviceBase + i);
  for (let i = 0; i < o.workers; i++) add(workerName(i), o.ports.workerHealthBase && o.ports.workerHealthBase + i);
  for (let i = 0; i < o.gateways; i++) add(gatewayName(i), o.ports.gatewayBase && o.ports.gatewayBase + i);
  add('nginx', o.ports.nginx);
  add('nginx live', o.ports.nginxLive);
  if (!o.metrics) return out;
  metricsPortOrder(o).forEach((name, i) => add(`${name} metrics`, o.ports.metricsBase && o.ports.metricsBase + i));
  add('nginx stub_status', o.ports.nginxStatus);
  DEFAULT_TOPOLOGY.shards.forEach((s, i) => add(redisExporterName(s.id), o.ports.redisExporterBase && o.ports.redisExporterBase + i));
  add(POSTGRES_EXPORTER, o.ports.postgresExporter);
  add(NGINX_EXPORTER, o.ports.nginxExporter);
  add(PROMETHEUS, o.ports.prometheus);
  return out;
}

/** The Node services in the order they take metrics ports from {@link StackPorts.metricsBase}. */
export function metricsPortOrder(o: Pick<ResolvedStackOptions, 'replicas' | 'workers' | 'gateways'>): string[] {
  return [
    ...Array.from({ length: o.replicas }, (_, i) => serviceName(i)),
    ...Array.from({ length: o.workers }, (_, i) => workerName(i)),
    ...Array.from({ length: o.gateways }, (_, i) => gatewayName(i)),
  ];
}

function assertDistinctPorts(o: ResolvedStackOptions): void {
  const seen = new Map<number, string>();
  for (const { name, port: p } of fixedPorts(o)) {
    if (p > 65535) throw new Error(`${name} would listen on port ${p}, above 65535: lower its base port`);
    const other = seen.get(p);
    if (other) throw new Error(`${other} and ${name} would both listen on port ${p}: change a base port`);
    seen.set(p, name);
  }
}

export const serviceName = (i: number): string => `leaderboard-service-${i + 1}`;
export const workerName = (i: number): string => `worker-service-${i + 1}`;
export const gatewayName = (i: number): string => `api-gateway-${i + 1}`;
export const redisExporterName = (shardId: string): string => `redis-exporter-${shardId}`;
/** A shard's Redis nodes: `redis-na` (the first primary, and the only node without replicas), `redis-na-b` (the first replica). */
export const redisNodeName = (shardId: string, i: number): string => (i === 0 ? `redis-${shardId}` : `redis-${shardId}-${String.fromCharCode(97 + i)}`);
export const sentinelName = (i: number): string => `sentinel-${i + 1}`;
/** The Sentinel master name of a shard. */
export const sentinelMasterName = (shardId: string): string => `lb-${shardId}`;
/** How many Sentinels the stack runs (quorum 2). */
export const SENTINELS = 3;
export const POSTGRES_EXPORTER = 'postgres-exporter';
export const NGINX_EXPORTER = 'nginx-exporter';
export const PROMETHEUS = 'prometheus';

/**
 * Which shards each worker consumes: shards dealt out round-robin, so every
 * shard has a consumer and, with more workers than shards, some have two
 * (BullMQ consumers compete safely; the upserts are idempotent).
 * One worker consumes everything ("all").
 */
export function workerShardAssignment(workers: number, shardIds: readonly string[]): string[][] {
  const out: string[][] = Array.from({ length: workers }, () => []);
  if (workers === 0) return out;
  const slots = Math.max(workers, shardIds.length);
  for (let k = 0; k < slots; k++) {
    const list = out[k % workers]!;
    const shard = shardIds[k % shardIds.length]!;
    if (!list.includes(shard)) list.push(shard);
  }
  return out;
}

/**
 * The local topology: the shards and regions of {@link DEFAULT_TOPOLOGY}
 * with Redis and Postgres on the given ports (same database names). With
 * `sentinelPorts`, every shard is the Sentinel master `lb-<shard>` behind
 * those Sentinels (on 127.0.0.1) instead, and `redisPorts` is not used.
 */
export function localTopology(redisPorts: readonly number[], postgresPort: number, sentinelPorts?: readonly number[]): Topology {
  const sentinels: readonly RedisNode[] | undefined = sentinelPorts && Object.freeze(sentinelPorts.map((port) => Object.freeze({ host: '127.0.0.1', port })));
  return Object.freeze({
    shards: Object.freeze(
      DEFAULT_TOPOLOGY.shards.map((s, i) => {
        const pg = new URL(s.postgres);
        pg.port = String(postgresPort);
        const redis: RedisEndpoint = sentinels
          ? Object.freeze({ kind: 'sentinel', master: sentinelMasterName(s.id), sentinels })
          : Object.freeze({ kind: 'server', url: `redis://127.0.0.1:${redisPorts[i]}` });
        return Object.freeze({ id: s.id, redis, postgres: pg.toString() });
      }),
    ),
    regions: DEFAULT_TOPOLOGY.regions,
  });
}

/** What the `npm start` command line asked for. */
export interface CliOptions {
  readonly stack: StartStackOptions;
  readonly quiet: boolean;
  readonly help: boolean;
}

export const USAGE = `usage: npm start -- [options]

Starts Redis (3 shards, each a primary and a replica, and 3 Sentinels),
Postgres, leaderboard-service replicas, worker-service, api-gateway
instances, nginx, the Redis/Postgres/nginx exporters and Prometheus on this
machine; Ctrl-C or \`npm stop\` stops them.

  --replicas N            leaderboard-service replicas      (env REPLICAS, default 3)
  --no-replicas           no Redis replicas and no Sentinels: one redis-server per shard
                          (env REDIS_REPLICAS=0; default 1: a primary and a replica per shard)
  --gateways N            api-gateway instances             (env GATEWAYS, default 3)
  --workers N             worker-service processes          (env WORKERS, default 1)
  --nginx-port P          nginx port                        (env NGINX_PORT, default 8080)
  --service-base-port P   first leaderboard-service port    (env SERVICE_BASE_PORT, default 5001)
  --gateway-base-port P   first api-gateway port            (env GATEWAY_BASE_PORT, default 4000)
  --worker-health-base-port P  first worker /health port    (env WORKER_HEALTH_BASE_PORT, default 5101)
  --redis-ports P,P,P     Redis ports of na, eu, asia       (env REDIS_PORTS, default 6391,6392,6393):
                          redis-<shard>, the first primary of each shard
  --redis-replica-ports P,P,P  ports of the replicas redis-<shard>-b (env REDIS_REPLICA_PORTS,
                          default 6401,6402,6403)
  --sentinel-ports P,P,P  Redis Sentinels sentinel-1..3     (env SENTINEL_PORTS, default 26391,26392,26393)
  --postgres-port P       Postgres port                     (env POSTGRES_PORT, default 5442)
  --data-dir DIR          data, logs and state              (env STACK_DATA_DIR, default .data)
  --log-level L           LOG_LEVEL of the services         (env LOG_LEVEL, default info)
  --code dist|source      what the Node services run        (env STACK_CODE, default dist): dist = the
                          compiled JavaScript (built first when older than the sources), source = the
                          TypeScript through tsx
  --no-metrics            no /metrics listeners (METRICS_PORT=0), no exporters, no Prometheus
                          (env STACK_METRICS=off); by default Prometheus runs on --prometheus-port
  --metrics-base-port P   first /metrics port of the Node services (env METRICS_BASE_PORT, default 9101):
                          replicas, then workers, then gateways
  --prometheus-port P     Prometheus UI and API                (env PROMETHEUS_PORT, default 9090)
  --scrape-interval S     Prometheus scrape interval, seconds  (env SCRAPE_INTERVAL, default 5)
  --no-restart            only report a component that dies (env STACK_RESTART=off); by default it is
                          restarted after 0.5 s, 1 s, 2 s… up to 5 s, and left down after 5 restarts in 60 s
  --quiet                 logs to .data/logs/*.log only, not to the terminal
  Live streams, held by nginx (nchan): env LIVE_HEARTBEAT_MS (default 15000, whole seconds),
  LIVE_RETRY_MS (3000), LIVE_MAX_STREAMS_PER_IP (20), NGINX_LIVE_PORT (its internal live server, 8091).
  A port of 0 picks a free one. JWT_SECRET from the environment wins over .data/jwt-secret.`;

function int(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  if (!/^\d+$/.test(raw.trim())) throw new Error(`${name} must be a non-negative integer, got "${raw}"`);
  return Number(raw);
}

/** Parses `npm start` flags; each flag wins over its environment variable. */
export function parseCli(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): CliOptions {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      replicas: { type: 'string' },
      gateways: { type: 'string' },
      workers: { type: 'string' },
      'nginx-port': { type: 'string' },
      'service-base-port': { type: 'string' },
      'gateway-base-port': { type: 'string' },
      'worker-health-base-port': { type: 'string' },
      'redis-ports': { type: 'string' },
      'redis-replica-ports': { type: 'string' },
      'sentinel-ports': { type: 'string' },
      'no-replicas': { type: 'boolean', default: false },
      'postgres-port': { type: 'string' },
      'data-dir': { type: 'string' },
      'log-level': { type: 'string' },
      code: { type: 'string' },
      'no-restart': { type: 'boolean', default: false },
      'no-metrics': { type: 'boolean', default: false },
      'metrics-base-port': { type: 'string' },
      'prometheus-port': { type: 'string' },
      'scrape-interval': { type: 'string' },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const pick = (flag: keyof typeof values, envName: string): string | undefined =>
    (values[flag] as string | undefined) ?? env[envName];
  const portList = (flag: keyof typeof values, envName: string, what: string): number[] | undefined => {
    const raw = pick(flag, envName);
    return raw?.trim() ? raw.split(',').map((p, i) => int(`${what} ${i + 1}`, p) ?? 0) : undefined;
  };
  const redis = portList('redis-ports', 'REDIS_PORTS', 'redis port');
  const redisReplica = portList('redis-replica-ports', 'REDIS_REPLICA_PORTS', 'redis replica port');
  const sentinels = portList('sentinel-ports', 'SENTINEL_PORTS', 'sentinel port');
  const replicasRaw = env.REDIS_REPLICAS?.trim();
  if (replicasRaw !== undefined && replicasRaw !== '' && replicasRaw !== '0' && replicasRaw !== '1') {
    throw new Error(`REDIS_REPLICAS must be 0 (no replicas, no Sentinels) or 1 (a replica per shard), got "${env.REDIS_REPLICAS}"`);
  }
  const noRedisReplicas = (values['no-replicas'] as boolean) || replicasRaw === '0';
  const ports: StackPorts = {
    ...(redis && { redis }),
    ...(redisReplica && { redisReplica }),
    ...(sentinels && { sentinels }),
    ...defined('postgres', int('--postgres-port / POSTGRES_PORT', pick('postgres-port', 'POSTGRES_PORT'))),
    ...defined('serviceBase', int('--service-base-port / SERVICE_BASE_PORT', pick('service-base-port', 'SERVICE_BASE_PORT'))),
    ...defined('gatewayBase', int('--gateway-base-port / GATEWAY_BASE_PORT', pick('gateway-base-port', 'GATEWAY_BASE_PORT'))),
    ...defined(
      'workerHealthBase',
      int('--worker-health-base-port / WORKER_HEALTH_BASE_PORT', pick('worker-health-base-port', 'WORKER_HEALTH_BASE_PORT')),
    ),
    ...defined('nginx', int('--nginx-port / NGINX_PORT', pick('nginx-port', 'NGINX_PORT'))),
    ...defined('metricsBase', int('--metrics-base-port / METRICS_BASE_PORT', pick('metrics-base-port', 'METRICS_BASE_PORT'))),
    ...defined('prometheus', int('--prometheus-port / PROMETHEUS_PORT', pick('prometheus-port', 'PROMETHEUS_PORT'))),
    ...defined('nginxLive', int('NGINX_LIVE_PORT', env.NGINX_LIVE_PORT)),
  };
  const live = {
    ...defined('heartbeatMs', int('LIVE_HEARTBEAT_MS', env.LIVE_HEARTBEAT_MS)),
    ...defined('retryMs', int('LIVE_RETRY_MS', env.LIVE_RETRY_MS)),
    ...defined('maxStreamsPerIp', int('LIVE_MAX_STREAMS_PER_IP', env.LIVE_MAX_STREAMS_PER_IP)),
  };
  const dataDir = pick('data-dir', 'STACK_DATA_DIR');
  const logLevel = pick('log-level', 'LOG_LEVEL');
  if (logLevel !== undefined && !['debug', 'info', 'warn', 'error', 'silent'].includes(logLevel)) {
    throw new Error(`--log-level / LOG_LEVEL must be debug, info, warn, error or silent, got "${logLevel}"`);
  }
  const code = pick('code', 'STACK_CODE');
  const restartOff = (values['no-restart'] as boolean) || switchOff('STACK_RESTART', env.STACK_RESTART);
  const metricsOff = (values['no-metrics'] as boolean) || switchOff('STACK_METRICS', env.STACK_METRICS);
  const stack: StartStackOptions = {
    ...defined('replicas', int('--replicas / REPLICAS', pick('replicas', 'REPLICAS'))),
    ...(noRedisReplicas && { redisReplicas: false }),
    ...defined('gateways', int('--gateways / GATEWAYS', pick('gateways', 'GATEWAYS'))),
    ...defined('workers', int('--workers / WORKERS', pick('workers', 'WORKERS'))),
    ports,
    ...(dataDir && { dataDir: isAbsolute(dataDir) ? dataDir : resolve(dataDir) }),
    ...(logLevel && { logLevel: logLevel as LogLevel }),
    ...(code && { code: nodeCode('--code / STACK_CODE', code) }),
    ...(env.JWT_SECRET?.trim() && { jwtSecret: env.JWT_SECRET.trim() }),
    echo: !values.quiet,
    strict: false,
    ...(restartOff && { restart: false as const }),
    ...(metricsOff && { metrics: false }),
    ...defined('scrapeIntervalSeconds', int('--scrape-interval / SCRAPE_INTERVAL', pick('scrape-interval', 'SCRAPE_INTERVAL'))),
    ...(Object.keys(live).length > 0 && { live }),
  };
  // Validate now, so a typo fails before anything starts.
  resolveStackOptions(stack);
  return { stack, quiet: values.quiet as boolean, help: values.help as boolean };
}

/** True when an on/off environment switch says off; unset means on. */
function switchOff(name: string, raw: string | undefined): boolean {
  const v = raw?.trim().toLowerCase();
  if (v === undefined || v === '' || ['on', 'true', 'yes', '1'].includes(v)) return false;
  if (['off', 'false', 'no', '0'].includes(v)) return true;
  throw new Error(`${name} must be on or off, got "${raw}"`);
}

function defined<K extends string>(key: K, value: number | undefined): Partial<Record<K, number>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, number>);
}
