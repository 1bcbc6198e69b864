/**
 * The whole load-balanced topology on one machine, without Docker:
 * Redis x3 (AOF on; by default each shard a primary and a replica, with
 * three Sentinels watching them all; `redisReplicas: false` for one plain
 * server per shard), Postgres (databases + migrations), leaderboard-service
 * replicas, worker-service, api-gateway instances and nginx; unless
 * `metrics: false`, also the Redis, Postgres and nginx exporters and a
 * Prometheus scraping everything (scripts/stack/prometheus.ts).
 *
 * It also supervises them: a component that dies on its own is restarted on
 * the same port with the same data, with a growing delay, until it has died
 * too often (see {@link RestartBudget}).
 *
 * `npm start` (scripts/start.ts) runs it in the foreground; end-to-end tests
 * and the benchmark call {@link startStack} with a temporary data directory
 * and `ports: 'ephemeral'`. `npm start` and the benchmark run the compiled
 * services (what ships); the end-to-end tests run the sources
 * (`code: 'source'`), except test/build.e2e.test.ts.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Topology } from '@lb/common/contracts';
import { createLogger, DEFAULT_TOPOLOGY, ensureDatabase, migrateTopology, PgPools, redactUrl, topologyJson } from '@lb/common/platform';
import { ApiKeysRepo } from '@lb/leaderboard-service/db';
import {
  ensureBinaries,
  METRICS_BINARIES,
  pingRedis,
  rememberedPrimaries,
  sentinelPrimary,
  waitForSentinels,
  type BinaryName,
  type RedisAddress,
  type RedisRole,
} from '@lb/devtools/infra';
import { ensureBuilt } from './build.js';
import { describeExit, type ExitInfo } from './children.js';
import {
  BinaryComponent,
  NginxComponent,
  NodeComponent,
  PostgresComponent,
  RedisComponent,
  SentinelComponent,
  STOP_ORDER,
  type Component,
  type ComponentContext,
  type ComponentInfo,
} from './components.js';
import { describeProbe, type WaitOutcome } from './health.js';
import { lastLines, paint, tailFile } from './logs.js';
import {
  fixedPorts,
  gatewayName,
  localTopology,
  metricsPortOrder,
  NGINX_EXPORTER,
  POSTGRES_EXPORTER,
  PROMETHEUS,
  redisExporterName,
  redisNodeName,
  resolveStackOptions,
  RestartBudget,
  sentinelMasterName,
  sentinelName,
  serviceName,
  workerName,
  workerShardAssignment,
  type ResolvedStackOptions,
  type StartStackOptions,
} from './options.js';
import { SQL_DIR, WEB_DIST } from './paths.js';
import { JOBS, queueRejectLength, RECORDING_RULES, renderAlertRules, renderPrometheusConfig, type ScrapeTarget } from './prometheus.js';
import { processStartTime } from './proc.js';
import { adminKeyPath, assertNotRunning, ensureAdminKey, removeStackFile, resolveJwtSecret, writeStackFile } from './state.js';

export type { ComponentInfo, ComponentKind, ComponentStatus } from './components.js';
export type { ExitInfo } from './children.js';
export type { NodeCode, RestartPolicy, StackPorts, StartStackOptions } from './options.js';
export type { RedisAddress, RedisRole } from '@lb/devtools/infra';

/** The signals {@link Stack.sendSignal} sends. */
export type FaultSignal = 'SIGKILL' | 'SIGTERM' | 'SIGSTOP' | 'SIGCONT';
export { DEFAULT_RESTART_POLICY, DEFAULT_STACK_PORTS, EPHEMERAL_PORTS } from './options.js';

/** A running stack. */
export interface Stack {
  /** nginx, the public entry point: `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Base URLs of the api-gateway instances, in order. */
  readonly gatewayUrls: readonly string[];
  /** Base URLs of the leaderboard-service replicas, in order. */
  readonly serviceUrls: readonly string[];
  /** The topology every service was given (its Redis/Postgres ports). */
  readonly topology: Topology;
  /** The JWT_SECRET every service was given (sign test tokens with it). */
  readonly jwtSecret: string;
  readonly dataDir: string;
  /** The file holding the admin API key the stack created on its first start (mode 600). */
  readonly adminKeyFile: string;
  /** Prometheus (UI and HTTP API): `http://127.0.0.1:<port>`; undefined with `metrics: false`. */
  readonly prometheusUrl: string | undefined;
  /**
   * nginx's internal live server, `http://127.0.0.1:<port>`: nchan's
   * publisher (`/pub/<channel>`, the replicas' LIVE_PUBLISH_URL) and
   * `/nchan_status` (channels, subscribers, messages published).
   */
  readonly liveUrl: string;
  /** Snapshot of every component, in start order (a new array on each read). */
  readonly components: readonly ComponentInfo[];
  /** Snapshot of one component by name; throws for an unknown name. */
  component(name: string): ComponentInfo;
  /**
   * Whether every shard is a primary and a replica behind Sentinels (the
   * default), or one plain redis-server (`redisReplicas: false`).
   */
  readonly redisReplicas: boolean;
  /**
   * Snapshots of a shard's Redis nodes (name, port, pid, status…): with
   * replicas `redis-<shard>` (started as primary) and `redis-<shard>-b`
   * (started as its replica), whichever is primary now; without, `redis-<shard>`.
   * Throws for an unknown shard.
   */
  redisNodes(shardId: string): ComponentInfo[];
  /** Ports of the Sentinels `sentinel-1..3` on 127.0.0.1, in order (empty without replicas). */
  readonly sentinelPorts: readonly number[];
  /**
   * A Redis node's role now, by component name (INFO replication: `master`,
   * or `slave` with its primary and link status). Rejects when the node does
   * not answer within `timeoutMs` (down, or SIGSTOPped).
   */
  redisRole(name: string, timeoutMs?: number): Promise<RedisRole>;
  /**
   * The current primary of a shard as the Sentinels name it (what the
   * services connect to): its address and the node's component name;
   * undefined when no Sentinel answers. Without replicas: the one node.
   */
  redisPrimary(shardId: string): Promise<{ readonly name: string | undefined; readonly address: RedisAddress } | undefined>;
  /**
   * Fault injection by PID, exactly as from outside the stack (`kill -9`,
   * `kill -STOP`): SIGKILL and SIGTERM are a crash, and the supervisor
   * restarts the component (a Redis node by the restart rule: it rejoins as
   * a replica of whichever node the Sentinels promoted); SIGSTOP freezes it,
   * and a frozen component still runs, so it is never restarted (its
   * ComponentInfo says `paused`) until SIGCONT continues it. A stop of the
   * stack continues frozen components first. Throws when it is not running.
   */
  sendSignal(name: string, signal: FaultSignal): ComponentInfo;
  /**
   * Fault injection: sends `signal` (default SIGKILL) to a component and waits
   * until it is gone. Not reported as a crash and not restarted (a pending
   * automatic restart is cancelled); the rest keeps running. A kill by PID
   * from outside, by contrast, is a crash and is restarted.
   */
  kill(name: string, signal?: NodeJS.Signals): Promise<ExitInfo | undefined>;
  /**
   * Starts a component again on the same port (stopping it first if it runs)
   * and waits until it is healthy. Cancels a pending automatic restart, and
   * gives a component that was left down a fresh restart budget.
   */
  restart(name: string): Promise<ComponentInfo>;
  /** Cancels pending restarts, then stops everything in reverse dependency order and waits for each. Idempotent. */
  stop(): Promise<void>;
}

const INFRA_MONITOR_MS = 500;
/**
 * A Redis node of a shard with a replica that has not answered PING for
 * this long is hung (a frozen process, a dead disk): the supervisor kills it
 * so that it restarts, by the restart rule, as the replica of the node the
 * Sentinels promote meanwhile (down-after 1.5 s). Left alone, a hung old
 * primary would keep the promoted one without a replica, and so without
 * writes (min-replicas-to-write 1), for as long as it hangs.
 */
export const REDIS_HUNG_MS = 2000;

/** An automatic restart of one component: waiting out its backoff, or starting it. */
interface PendingRestart {
  readonly cancel: AbortController;
  /** Settles (never rejects) when the attempt is over or was cancelled. */
  readonly done: Promise<void>;
}

/**
 * Starts the stack and resolves once every component was started and
 * checked. With `strict` (the default) any component that is not healthy
 * rejects the promise after stopping everything; without it the failure is
 * reported through `log` and the rest keeps running. Redis, Postgres and
 * migration failures always reject.
 *
 * With `code: 'dist'` (the default) it first builds the services when their
 * dist/ is missing or older than the sources (scripts/build.mjs --if-stale).
 *
 * Refuses to start when `<dataDir>/stack.json` names a stack that still runs.
 */
export async function startStack(options: StartStackOptions = {}): Promise<Stack> {
  const o = resolveStackOptions(options);
  const log = options.log ?? ((line: string) => void process.stderr.write(line + '\n'));
  for (const d of ['logs', 'redis', 'nginx', ...(o.redisReplicas ? ['sentinel'] : [])]) mkdirSync(join(o.dataDir, d), { recursive: true });
  assertNotRunning(o.dataDir);
  if (o.code === 'dist') await ensureBuilt(log);
  // The sources need no build, but nginx serves the live page from web/dist either way. A page
  // that does not build stops nothing else: nginx then answers / with a JSON 404 saying so.
  else await ensureBuilt(log, { webOnly: true }).catch((e: unknown) => log(`the live page (web/) could not be built; / answers 404: ${(e as Error).message}`));
  // Fail with the apt-get command rather than a spawn ENOENT halfway through.
  const servers: BinaryName[] = ['redis-server', ...(o.redisReplicas ? (['redis-sentinel'] as const) : []), 'postgres', 'initdb', 'nginx', 'nchan'];
  const bins = await ensureBinaries([...servers, ...(o.metrics ? METRICS_BINARIES : [])], { install: false });
  await assertPortsFree(o);
  const jwtSecret = resolveJwtSecret(o.dataDir, options.jwtSecret);
  const runner = new StackRunner(o, options, log, jwtSecret, bins);
  runner.record();
  try {
    await runner.boot();
  } catch (e) {
    await runner.stop().catch(() => undefined);
    throw e;
  }
  return runner.api();
}

class StackRunner {
  private readonly components: Component[] = [];
  /** Every Redis node: per shard, the one started as primary first. */
  private readonly redis: RedisComponent[] = [];
  /** Per shard (in topology order) its nodes. */
  private readonly shardNodes = new Map<string, RedisComponent[]>();
  /** The node of each shard that starts as primary at the stack's start. */
  private readonly initialPrimaries: RedisComponent[] = [];
  /** The three Sentinels; none without replicas. */
  private readonly sentinels: SentinelComponent[] = [];
  private readonly postgres: PostgresComponent;
  private readonly services: NodeComponent[] = [];
  private readonly workers: NodeComponent[] = [];
  private readonly gateways: NodeComponent[] = [];
  private readonly nginx: NginxComponent;
  /** Redis exporters (one per shard), the Postgres and the nginx exporter; none without metrics. */
  private readonly exporters: BinaryComponent[] = [];
  private readonly prometheus: BinaryComponent | undefined;
  private readonly ctx: ComponentContext;
  private readonly stopTails: Array<() => void> = [];
  private topology: Topology | undefined;
  /** nginx's internal live server, the replicas' LIVE_PUBLISH_URL (known once boot has picked its port). */
  private livePublishUrl: string | undefined;
  private monitor: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;
  /** Aborted by stop(), or by the caller's start signal: ends health waits at once. */
  private readonly lifetime = new AbortController();
  private readonly budgets = new Map<Component, RestartBudget>();
  private readonly pending = new Map<Component, PendingRestart>();
  private readonly startedAt = new Date().toISOString();

  constructor(
    private readonly o: ResolvedStackOptions,
    private readonly options: StartStackOptions,
    private readonly log: (line: string) => void,
    private readonly jwtSecret: string,
    bins: Readonly<Record<string, string>>,
  ) {
    const shardIds = DEFAULT_TOPOLOGY.shards.map((s) => s.id);
    const nodeNames = metricsPortOrder(o);
    const redisNames = shardIds.flatMap((id) => (o.redisReplicas ? [redisNodeName(id, 0), redisNodeName(id, 1)] : [redisNodeName(id, 0)]));
    const sentinelNames = o.redisReplicas ? o.ports.sentinels.map((_p, i) => sentinelName(i)) : [];
    const names = ['postgres', 'nginx', ...redisNames, ...sentinelNames, ...nodeNames, ...shardIds.map(redisExporterName), POSTGRES_EXPORTER, NGINX_EXPORTER, PROMETHEUS];
    // Each Node service's /metrics port (undefined = metrics off: METRICS_PORT=0).
    const metricsPort = (name: string): number | undefined => (o.metrics ? base(o.ports.metricsBase, nodeNames.indexOf(name)) : undefined);
    const metricsEnv = (port: number): Record<string, string> => ({ METRICS_PORT: String(port), METRICS_HOST: '127.0.0.1' });
    this.ctx = {
      logsDir: join(o.dataDir, 'logs'),
      logTarget: { echo: o.echo, prefixWidth: Math.max(...names.map((n) => n.length)) },
      healthTimeoutMs: o.healthTimeoutMs,
      signal: this.lifetime.signal,
      node: o.node,
    };
    if (options.signal?.aborted) this.lifetime.abort();
    options.signal?.addEventListener('abort', () => this.lifetime.abort(), { once: true });
    this.createRedis(shardIds);
    this.postgres = new PostgresComponent(join(o.dataDir, 'postgres'), o.ports.postgres, options.postgresFast ?? false, this.ctx);
    for (let i = 0; i < o.replicas; i++) {
      this.services.push(
        new NodeComponent(serviceName(i), 'service', base(o.ports.serviceBase, i), (port, mport) =>
          this.nodeEnv('service', { PORT: String(port), HOST: '127.0.0.1', INSTANCE_ID: serviceName(i), LIVE_PUBLISH_URL: this.livePublishUrl!, ...metricsEnv(mport) }),
        this.ctx, o.code, options.nodeArgs?.service, metricsPort(serviceName(i))),
      );
    }
    const assignment = workerShardAssignment(o.workers, shardIds);
    for (let i = 0; i < o.workers; i++) {
      const shards = assignment[i]!.length === shardIds.length ? 'all' : assignment[i]!.join(',');
      this.workers.push(
        new NodeComponent(workerName(i), 'worker', base(o.ports.workerHealthBase, i), (port, mport) =>
          this.nodeEnv('worker', { WORKER_SHARDS: shards, HEALTH_PORT: String(port), HEALTH_HOST: '127.0.0.1', INSTANCE_ID: workerName(i), ...metricsEnv(mport) }),
        this.ctx, o.code, options.nodeArgs?.worker, metricsPort(workerName(i))),
      );
    }
    for (let i = 0; i < o.gateways; i++) {
      this.gateways.push(
        new NodeComponent(gatewayName(i), 'gateway', base(o.ports.gatewayBase, i), (port, mport) =>
          this.nodeEnv('gateway', {
            PORT: String(port),
            HOST: '127.0.0.1',
            GATEWAY_ID: gatewayName(i),
            // Replicas that never got a port (entry point missing) are left out.
            LEADERBOARD_SERVICE_URLS: this.services.flatMap((s) => s.url() ?? []).join(','),
            ...metricsEnv(mport),
          }),
        this.ctx, o.code, options.nodeArgs?.gateway, metricsPort(gatewayName(i))),
      );
    }
    this.nginx = new NginxComponent(
      o.ports.nginx,
      o.ports.nginxLive,
      {
        binary: bins.nginx!,
        dir: join(o.dataDir, 'nginx'),
        accessLog: options.nginxAccessLog === false ? 'off' : join(this.ctx.logsDir, 'nginx-access.log'),
        gateways: () => this.gateways.flatMap((g) => (g.port ? [`127.0.0.1:${g.port}`] : [])),
        statusPort: o.metrics ? o.ports.nginxStatus : undefined,
        webRoot: WEB_DIST,
        ...(options.live !== undefined && { live: options.live }),
        nchanModule: bins.nchan!,
      },
      this.ctx,
    );
    if (o.metrics) {
      this.exporters.push(...this.createExporters(bins));
      this.prometheus = this.createPrometheus(bins.prometheus!);
    }
    const monitoring = [...this.exporters, ...(this.prometheus ? [this.prometheus] : [])];
    this.components.push(...this.redis, ...this.sentinels, this.postgres, ...this.services, ...this.workers, ...this.gateways, this.nginx, ...monitoring);
    for (const c of [...this.services, ...this.workers, ...this.gateways, this.nginx, ...monitoring]) c.onCrash = (comp, exit) => this.crashed(comp, exit);
  }

  /**
   * The Redis nodes and, with replicas, the Sentinels. Without replicas: one
   * `redis-<shard>` per shard, data in `<dataDir>/redis/<shard>` (as before
   * replicas existed). With: `redis-<shard>` (`<dataDir>/redis/<shard>`) and
   * `redis-<shard>-b` (`<dataDir>/redis/<shard>-b`), and `sentinel-1..3`
   * with their rewritable configurations in `<dataDir>/sentinel/sentinel-<n>`.
   *
   * The very first start makes `redis-<shard>` the primary. When the
   * Sentinels' configurations of an earlier run in this data directory name
   * the other node (it was promoted and is still primary), that one starts
   * as primary instead, so a stack started again never syncs the current
   * primary from a node that was behind it.
   */
  private createRedis(shardIds: readonly string[]): void {
    const o = this.o;
    if (!o.redisReplicas) {
      shardIds.forEach((id, i) => {
        const node = new RedisComponent(id, redisNodeName(id, 0), join(o.dataDir, 'redis', id), o.ports.redis[i]!, this.ctx);
        this.redis.push(node);
        this.initialPrimaries.push(node);
        this.shardNodes.set(id, [node]);
      });
      return;
    }
    const sentinelDirs = o.ports.sentinels.map((_p, i) => join(o.dataDir, 'sentinel', sentinelName(i)));
    const remembered = rememberedPrimaries(sentinelDirs);
    /** Which node of each shard starts as primary (0 or 1). */
    const firstPrimary = new Map<string, number>();
    let configsMatch = remembered.size === shardIds.length;
    shardIds.forEach((id, i) => {
      const ports = [o.ports.redis[i]!, o.ports.redisReplica[i]!];
      const r = remembered.get(sentinelMasterName(id));
      const at = r ? ports.findIndex((p) => p !== 0 && p === r.port) : -1;
      if (at < 0) configsMatch = false;
      firstPrimary.set(id, Math.max(at, 0));
    });
    shardIds.forEach((id, i) => {
      const ports = [o.ports.redis[i]!, o.ports.redisReplica[i]!];
      const nodes: RedisComponent[] = [];
      for (let n = 0; n < 2; n++) {
        const name = redisNodeName(id, n);
        nodes.push(
          new RedisComponent(id, name, join(o.dataDir, 'redis', n === 0 ? id : `${id}-${name.slice(name.lastIndexOf('-') + 1)}`), ports[n]!, this.ctx, {
            master: sentinelMasterName(id),
            sentinelPorts: () => this.sentinels.flatMap((s) => (s.port ? [s.port] : [])),
            initialRole: () => {
              const p = firstPrimary.get(id)!;
              return p === n ? 'primary' : { host: '127.0.0.1', port: nodes[p]!.port! };
            },
            log: (line) => this.log(paint('cyan', line)),
          }),
        );
      }
      this.shardNodes.set(id, nodes);
      // Start order: the first primary of each shard, then the other node.
      const p = firstPrimary.get(id)!;
      this.redis.push(nodes[p]!, nodes[1 - p]!);
      this.initialPrimaries.push(nodes[p]!);
    });
    // A configuration of an earlier run naming other ports (ports changed) is replaced; one that matches is kept.
    const masters = () =>
      shardIds.map((id) => {
        const primary = this.shardNodes.get(id)![firstPrimary.get(id)!]!;
        return { name: sentinelMasterName(id), host: '127.0.0.1', port: primary.port! };
      });
    o.ports.sentinels.forEach((port, i) => {
      this.sentinels.push(new SentinelComponent(sentinelName(i), sentinelDirs[i]!, port, masters, !configsMatch, this.ctx));
    });
  }

  /**
   * Each shard's first node, `redis-<shard>`: what its exporter watches (with
   * replicas, whatever its role is now: the exporter reports it).
   */
  private firstNodes(): RedisComponent[] {
    return [...this.shardNodes.values()].map((nodes) => nodes[0]!);
  }

  /**
   * One prometheus-redis-exporter per shard, prometheus-postgres-exporter
   * and prometheus-nginx-exporter, each on 127.0.0.1. Flags as the Debian
   * packages (bookworm: redis 1.45, postgres 0.11, nginx 0.11) spell them.
   */
  private createExporters(bins: Readonly<Record<string, string>>): BinaryComponent[] {
    const listen = (port: number): string => `127.0.0.1:${port}`;
    const spec = { healthPath: '/metrics', stopTimeoutMs: 10_000 } as const;
    const redis = this.firstNodes().map(
      (r, i) =>
        new BinaryComponent(redisExporterName(r.shardId), 'exporter', base(this.o.ports.redisExporterBase, i), {
          ...spec,
          binary: bins['prometheus-redis-exporter']!,
          args: (port) => ['-redis.addr', r.url()!, '-web.listen-address', listen(port)],
        }, this.ctx),
    );
    const postgres = new BinaryComponent(POSTGRES_EXPORTER, 'exporter', this.o.ports.postgresExporter, {
      ...spec,
      binary: bins['prometheus-postgres-exporter']!,
      args: (port) => [`--web.listen-address=${listen(port)}`, '--log.level=warn'],
      // Trust authentication on 127.0.0.1 (devtools' Postgres): no password in the URL.
      env: () => ({ DATA_SOURCE_NAME: `postgresql://leaderboard@127.0.0.1:${this.postgres.port}/postgres?sslmode=disable` }),
    }, this.ctx);
    const nginx = new BinaryComponent(NGINX_EXPORTER, 'exporter', this.o.ports.nginxExporter, {
      ...spec,
      binary: bins['prometheus-nginx-exporter']!,
      args: (port) => ['-nginx.scrape-uri', this.nginx.statusUrl()!, '-web.listen-address', listen(port)],
    }, this.ctx);
    return [...redis, postgres, nginx];
  }

  /** Prometheus, data in `<dataDir>/prometheus/tsdb`; its configuration is generated at each launch from the ports in use. */
  private createPrometheus(binary: string): BinaryComponent {
    const dir = join(this.o.dataDir, 'prometheus');
    const config = join(dir, 'prometheus.yml');
    const alerts = join(dir, 'alerts.yml');
    return new BinaryComponent(PROMETHEUS, 'prometheus', this.o.ports.prometheus, {
      binary,
      healthPath: '/-/ready',
      // It writes its head block out on SIGTERM.
      stopTimeoutMs: 30_000,
      prepare: (port) => {
        mkdirSync(dir, { recursive: true });
        writeFileSync(alerts, renderAlertRules(queueRejectLength(this.nodeEnv('service', {}))));
        writeFileSync(
          config,
          renderPrometheusConfig({
            targets: this.scrapeTargets(port),
            scrapeIntervalSeconds: this.o.scrapeIntervalSeconds,
            ruleFiles: [RECORDING_RULES, alerts],
            note: `For the stack in ${this.o.dataDir}: rewritten at each start of Prometheus.`,
          }),
        );
      },
      args: (port) => [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(dir, 'tsdb')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--storage.tsdb.retention.time=15d',
        '--log.level=warn',
      ],
    }, this.ctx);
  }

  /** What Prometheus scrapes: every Node service's metrics port, every exporter, itself. */
  private scrapeTargets(prometheusPort: number): ScrapeTarget[] {
    const node = (list: readonly NodeComponent[], job: ScrapeTarget['job']): ScrapeTarget[] =>
      list.flatMap((c) => (c.metricsPort ? [{ job, address: `127.0.0.1:${c.metricsPort}`, instance: c.name }] : []));
    const exporter = (name: string): string => `127.0.0.1:${this.exporters.find((e) => e.name === name)!.port}`;
    return [
      ...node(this.gateways, JOBS.gateway),
      ...node(this.services, JOBS.service),
      ...node(this.workers, JOBS.worker),
      ...this.firstNodes().map((r) => ({ job: JOBS.redis, address: exporter(redisExporterName(r.shardId)), instance: r.name, labels: { shard: r.shardId } })),
      { job: JOBS.postgres, address: exporter(POSTGRES_EXPORTER), instance: this.postgres.name },
      { job: JOBS.nginx, address: exporter(NGINX_EXPORTER), instance: this.nginx.name },
      { job: JOBS.prometheus, address: `127.0.0.1:${prometheusPort}`, instance: PROMETHEUS },
    ];
  }

  /** Environment of a Node service: ours, minus a TOPOLOGY_FILE that would compete, plus the stack's settings. */
  private nodeEnv(kind: 'service' | 'worker' | 'gateway', own: Record<string, string>): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.TOPOLOGY_FILE;
    return {
      ...env,
      TOPOLOGY: topologyJson(this.topology!),
      JWT_SECRET: this.jwtSecret,
      LOG_LEVEL: this.options.logLevel ?? process.env.LOG_LEVEL ?? 'info',
      ...this.options.env,
      ...this.options.envFor?.[kind],
      ...own,
    };
  }

  async boot(): Promise<void> {
    const started = Date.now();
    this.log(`starting the stack in ${this.o.dataDir}`);

    // Stores first; their failures are fatal whatever `strict` says. With
    // replicas: each shard's primary, then its replica (it needs the
    // primary's port), then the Sentinels (they need both).
    await this.tier(this.initialPrimaries, true);
    await this.tier(this.redis.filter((r) => !this.initialPrimaries.includes(r)), true);
    await this.tier(this.sentinels, true);
    if (this.sentinels.length > 0) {
      // They find each other (and the replicas) through the primaries within a few seconds; until then they could not agree on a failover.
      const masters = [...this.shardNodes.keys()].map(sentinelMasterName);
      await waitForSentinels(this.sentinelPorts(), masters, { replicas: 1, timeoutMs: 20_000, signal: this.lifetime.signal }).then(
        () => this.log(`${paint('green', '✔')} Sentinels ${this.sentinelPorts().join(', ')} watch ${masters.join(', ')}, each with its replica`),
        (e: unknown) => this.log(paint('red', `✖ ${(e as Error).message}; a failover may not happen until they do`)),
      );
    }
    await this.tier([this.postgres], true);
    // From here on a store that dies is restarted, even while the rest starts.
    this.monitor = setInterval(() => this.watchInfra(), INFRA_MONITOR_MS);
    this.monitor.unref();
    this.topology = localTopology(
      this.firstNodes().map((r) => r.port!),
      this.postgres.port!,
      this.sentinels.length > 0 ? this.sentinelPorts() : undefined,
    );
    this.checkAbort();
    for (const url of new Set(this.topology.shards.map((s) => s.postgres))) await ensureDatabase(url);
    for (const r of await migrateTopology(this.topology, SQL_DIR)) {
      const what = r.applied.length > 0 ? `applied ${r.applied.join(', ')}` : 'up to date';
      this.log(`migrations ${redactUrl(r.postgres)}: ${what}`);
    }
    const admin = await ensureAdminKey(this.o.dataDir, () => createAdminKey(this.topology!));
    if (admin.created) this.log(`admin API key created (send it as X-Api-Key; it is kept only here): ${admin.file}`);
    this.tailInfraLogs();

    // The replicas publish live messages to nginx (which starts last): its internal port is chosen now.
    this.livePublishUrl = await this.nginx.livePublishUrl();
    await this.tier(this.services, false);
    await this.tier(this.workers, false);
    await this.tier(this.gateways, false);
    await this.tier([this.nginx], false);

    // nginx alone being up says little: check a request makes it to a replica.
    const through = await this.nginx.probeThrough('/health');
    const ok = 'status' in through && through.status === 200;
    const msg = `GET ${this.nginx.url()}/health through nginx: ${describeProbe(through)}`;
    if (ok) this.log(paint('green', msg));
    else if (this.o.strict) throw new Error(msg);
    else this.log(paint('red', `✖ ${msg}`));

    // Last: the exporters once what they watch runs, Prometheus once every target has its port.
    await this.tier(this.exporters, false);
    if (this.prometheus) {
      await this.tier([this.prometheus], false);
      this.log(`Prometheus: ${this.prometheus.url()}`);
    }

    this.log(`stack up in ${((Date.now() - started) / 1000).toFixed(1)} s: ${this.nginx.url()}`);
  }

  /** Starts a group of components in parallel and reports each one. */
  private async tier(group: readonly Component[], fatal: boolean): Promise<void> {
    if (group.length === 0) return;
    this.checkAbort();
    const results = await Promise.allSettled(
      group.map(async (c) => {
        const outcome = await c.start();
        this.record();
        return outcome;
      }),
    );
    this.checkAbort();
    const failures: string[] = [];
    results.forEach((r, i) => {
      const c = group[i]!;
      if (r.status === 'rejected') {
        c.status = 'exited';
        c.detail = (r.reason as Error).message;
        failures.push(`${c.name}: ${c.detail}`);
        this.log(paint('red', `✖ ${c.name} failed to start: ${c.detail}`));
      } else if (r.value.ok) {
        this.log(`${paint('green', '✔')} ${c.name} healthy on port ${c.port} (pid ${c.pid()})`);
      } else {
        failures.push(this.reportUnhealthy(c, r.value));
      }
    });
    if (failures.length > 0 && (fatal || this.o.strict)) throw new Error(`stack start failed:\n${failures.join('\n\n')}`);
    // Not strict (npm start): the rest starts without them, and they get the
    // restarts of any component that died (a missing or hanging one does not).
    for (const c of group) if (c.status === 'exited') this.scheduleRestart(c);
  }

  private reportUnhealthy(c: Component, outcome: WaitOutcome & { ok: false }): string {
    let text: string;
    if (c.status === 'missing') text = `✖ ${c.name} not started: ${c.detail}`;
    else if (c.status === 'exited') {
      text =
        `✖ ${c.name} exited while starting (${c.exit ? describeExit(c.exit) : 'unknown exit'}); last lines of ${c.logFile}:\n` +
        indent(lastLines(c.logFile));
    } else {
      text = `✖ ${c.name} (pid ${c.pid()}, port ${c.port}) is not healthy: ${c.detail ?? outcome.last}; still running. Last lines of ${c.logFile}:\n${indent(lastLines(c.logFile))}`;
    }
    this.log(paint('red', text));
    return text;
  }

  /** A component died after it had started: say so loudly, keep the rest running, restart it. */
  private crashed(c: Component, exit: ExitInfo | undefined): void {
    if (this.stopping) return;
    this.log(
      paint(
        'red',
        `✖ ${c.name} (port ${c.port}) exited unexpectedly${exit ? ` with ${describeExit(exit)}` : ''}; the rest keeps running. ` +
          `Last lines of ${c.logFile}:\n${indent(lastLines(c.logFile))}`,
      ),
    );
    this.scheduleRestart(c);
  }

  private budget(c: Component): RestartBudget | undefined {
    if (!this.o.restart) return undefined;
    let b = this.budgets.get(c);
    if (!b) this.budgets.set(c, (b = new RestartBudget(this.o.restart)));
    return b;
  }

  /** After a death: schedules the next restart, or gives up on the component when its budget is spent. */
  private scheduleRestart(c: Component): void {
    if (this.stopping) return;
    const policy = this.o.restart;
    const budgeted = this.budget(c)?.next();
    const hung = this.killedAsHung.delete(c);
    const delayMs = budgeted !== undefined && hung ? 0 : budgeted;
    if (!policy || delayMs === undefined) {
      if (policy) {
        const why = `died again after ${count(policy.maxRestarts, 'restart')} within ${seconds(policy.windowMs)}`;
        c.status = 'failed';
        c.detail = `left down: ${why}${c.detail ? `; last: ${c.detail}` : ''}`;
        this.log(
          paint(
            'red',
            `✖✖ ${c.name} (port ${c.port}) ${why}: giving up, it is LEFT DOWN and will not be restarted again ` +
              `(restarted ${count(c.restarts, 'time')} in all). The rest keeps running; fix the cause and restart the stack.`,
          ),
        );
      }
      this.record();
      return;
    }
    c.status = 'restarting';
    this.record();
    this.log(
      paint('yellow', `↻ restarting ${c.name} in ${seconds(delayMs)} (restart ${c.restarts + 1}; at most ${policy.maxRestarts} within ${seconds(policy.windowMs)})`),
    );
    const cancel = new AbortController();
    const done = this.restartAfter(c, delayMs, cancel.signal).catch((e: unknown) => {
      // Nothing in there should throw; if it does, say so rather than lose the component silently.
      this.log(paint('red', `✖ restarting ${c.name} failed: ${(e as Error).message}`));
    });
    this.pending.set(c, { cancel, done });
    void done.then(() => {
      if (this.pending.get(c)?.done === done) this.pending.delete(c);
    });
  }

  private async restartAfter(c: Component, delayMs: number, cancel: AbortSignal): Promise<void> {
    try {
      await sleep(delayMs, undefined, { signal: cancel });
    } catch {
      return; // cancelled: stop(), or kill/restart through the API
    }
    c.restarts++;
    let outcome: WaitOutcome | undefined;
    try {
      outcome = await c.start();
    } catch (e) {
      // Redis and Postgres throw when they cannot start (the message has their log tail).
      c.status = 'exited';
      c.detail = (e as Error).message;
    }
    this.record();
    if (cancel.aborted || this.stopping) return;
    if (outcome?.ok) {
      this.log(paint('green', `✔ ${c.name} healthy again on port ${c.port} (pid ${c.pid()}; restarts: ${c.restarts})`));
      return;
    }
    if (outcome) this.reportUnhealthy(c, outcome);
    else this.log(paint('red', `✖ ${c.name} could not be restarted: ${c.detail}`));
    // Still running but not healthy: left as it is; if it dies, that is a crash like any other.
    if (c.status === 'exited') this.scheduleRestart(c);
  }

  /**
   * Cancels c's pending automatic restart and waits for an attempt in
   * progress to finish, so that a kill or restart through the API acts alone.
   */
  private async cancelRestart(c: Component): Promise<void> {
    for (let p = this.pending.get(c); p; p = this.pending.get(c)) {
      p.cancel.abort();
      await p.done;
      if (this.pending.get(c) === p) this.pending.delete(c);
    }
    if (c.status === 'restarting') {
      c.status = 'exited';
      c.detail = 'automatic restart cancelled';
    }
  }

  private sentinelPorts(): number[] {
    return this.sentinels.map((s) => s.port!);
  }

  /** Redis, the Sentinels and Postgres come from @lb/devtools/infra, which says whether they run but not when they exit: poll. */
  private watchInfra(): void {
    for (const c of [...this.redis, ...this.sentinels, this.postgres]) {
      if (c.deliberate || this.stopping) continue;
      if ((c.status === 'healthy' || c.status === 'unhealthy') && !c.running()) {
        c.status = 'exited';
        this.crashed(c, undefined);
      }
    }
    if (this.sentinels.length > 0) for (const c of this.redis) this.checkHung(c);
  }

  /** Last PONG of each Redis node (by pid: a restarted node starts afresh), and the pings in flight. */
  private readonly lastPong = new Map<Component, { pid: number; at: number }>();
  private readonly pinging = new Set<Component>();
  /**
   * Nodes the supervisor killed as hung: restarted at once, without the
   * backoff (their restart still counts against the budget). The backoff
   * is for a component that keeps crashing; this kill was the supervisor's
   * own, and the restart rule waits for the promotion anyway.
   */
  private readonly killedAsHung = new Set<Component>();

  /** Kills a Redis node of a replicated shard that has not answered for REDIS_HUNG_MS (see there). */
  private checkHung(c: RedisComponent): void {
    const pid = c.pid();
    if (c.deliberate || this.stopping || c.status !== 'healthy' || !c.running() || pid === undefined || this.pinging.has(c)) return;
    const now = Date.now();
    const seen = this.lastPong.get(c);
    if (!seen || seen.pid !== pid) this.lastPong.set(c, { pid, at: now });
    else if (now - seen.at > REDIS_HUNG_MS) {
      this.log(paint('red', `✖ ${c.name} (port ${c.port}, pid ${pid}) has not answered PING for ${seconds(now - seen.at)}: hung; killing it (SIGKILL) so that it restarts as the replica of the promoted node`));
      this.lastPong.delete(c);
      this.killedAsHung.add(c);
      c.sendSignal('SIGKILL');
      return;
    }
    this.pinging.add(c);
    void pingRedis(c.port!, REDIS_HUNG_MS)
      .then((ok) => {
        const s = this.lastPong.get(c);
        if (ok && s?.pid === pid) s.at = Date.now();
      })
      .finally(() => this.pinging.delete(c));
  }

  private tailInfraLogs(): void {
    if (!this.o.echo) return;
    for (const c of [...this.redis, ...this.sentinels, this.postgres]) {
      this.stopTails.push(
        tailFile(c.logFile, (line) => {
          process.stdout.write(`${paint(c.kind === 'postgres' ? 'blue' : 'cyan', c.name.padEnd(this.ctx.logTarget.prefixWidth))} ${paint('gray', '|')} ${line}\n`);
        }),
      );
    }
  }

  private checkAbort(): void {
    if (this.options.signal?.aborted) throw new Error('stack start aborted');
  }

  /**
   * Rewrites stack.json with every component's status, restarts and current
   * PID (stop.ts's fallback when we are gone; what status.ts shows).
   */
  record(): void {
    const supervisorStartTime = processStartTime(process.pid);
    writeStackFile(this.o.dataDir, {
      supervisorPid: process.pid,
      ...(supervisorStartTime !== undefined && { supervisorStartTime }),
      startedAt: this.startedAt,
      ...(this.nginx.url() && { url: this.nginx.url()! }),
      ...(this.prometheus?.url() && { prometheusUrl: this.prometheus.url()! }),
      ...(this.livePublishUrl && { liveUrl: this.livePublishUrl }),
      components: this.components.map((c) => {
        const pid = c.running() ? c.pid() : undefined;
        const startTime = pid === undefined ? undefined : c.startTime();
        return {
          name: c.name,
          kind: c.kind,
          ...(pid !== undefined && { pid }),
          ...(startTime !== undefined && { startTime }),
          ...(c.port ? { port: c.port } : {}),
          ...(c.metricsPort ? { metricsPort: c.metricsPort } : {}),
          status: c.status,
          restarts: c.restarts,
        };
      }),
    });
  }

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    if (this.monitor) clearInterval(this.monitor);
    // No restart may begin from now on, and none in progress may outlive the
    // stop: it would start a process after its kind was stopped.
    this.lifetime.abort();
    await Promise.all([...this.pending.keys()].map((c) => this.cancelRestart(c)));
    for (const kind of STOP_ORDER) {
      const group = this.components.filter((c) => c.kind === kind && c.running());
      if (group.length === 0) continue;
      await Promise.all(
        group.map(async (c) => {
          this.log(`stopping ${c.name} (pid ${c.pid()})`);
          await c.stop();
          this.log(`stopped ${c.name}${c.exit ? ` (${describeExit(c.exit)})` : ''}`);
        }),
      );
      this.record();
    }
    for (const t of this.stopTails) t();
    for (const c of this.components) if ('closeLog' in c) await (c as NodeComponent).closeLog();
    removeStackFile(this.o.dataDir);
  }

  private byName(name: string): Component {
    const c = this.components.find((x) => x.name === name);
    if (!c) throw new Error(`no component "${name}"; the stack has ${this.components.map((x) => x.name).join(', ')}`);
    return c;
  }

  api(): Stack {
    const self = this;
    return Object.freeze({
      url: this.nginx.url()!,
      gatewayUrls: Object.freeze(this.gateways.map((g) => g.url()!)),
      serviceUrls: Object.freeze(this.services.map((s) => s.url()!)),
      topology: this.topology!,
      jwtSecret: this.jwtSecret,
      adminKeyFile: adminKeyPath(this.o.dataDir),
      prometheusUrl: this.prometheus?.url(),
      liveUrl: this.livePublishUrl!,
      dataDir: this.o.dataDir,
      get components() {
        return self.components.map((c) => c.info());
      },
      component: (name: string) => self.byName(name).info(),
      redisReplicas: this.o.redisReplicas,
      sentinelPorts: Object.freeze(this.sentinels.map((c) => c.port!)),
      redisNodes(shardId: string) {
        const nodes = self.shardNodes.get(shardId);
        if (!nodes) throw new Error(`no shard "${shardId}"; the stack has ${[...self.shardNodes.keys()].join(', ')}`);
        return nodes.map((n) => n.info());
      },
      redisRole(name: string, timeoutMs?: number) {
        const c = self.byName(name);
        if (!(c instanceof RedisComponent)) return Promise.reject(new Error(`${name} is not a Redis node`));
        return c.role(timeoutMs);
      },
      async redisPrimary(shardId: string) {
        const nodes = self.shardNodes.get(shardId);
        if (!nodes) throw new Error(`no shard "${shardId}"; the stack has ${[...self.shardNodes.keys()].join(', ')}`);
        if (self.sentinels.length === 0) return { name: nodes[0]!.name, address: { host: '127.0.0.1', port: nodes[0]!.port! } };
        const address = await sentinelPrimary(self.sentinelPorts(), sentinelMasterName(shardId));
        return address && { name: nodes.find((n) => n.port === address.port)?.name, address };
      },
      sendSignal(name: string, signal: FaultSignal) {
        const c = self.byName(name);
        c.sendSignal(signal);
        return c.info();
      },
      async kill(name: string, signal: NodeJS.Signals = 'SIGKILL') {
        const c = self.byName(name);
        await self.cancelRestart(c);
        const exit = await c.kill(signal);
        self.record();
        return exit;
      },
      async restart(name: string) {
        const c = self.byName(name);
        if (self.stopping) throw new Error('the stack is stopping');
        await self.cancelRestart(c);
        if (self.stopping) throw new Error('the stack is stopping');
        await c.stop();
        self.budgets.get(c)?.reset();
        const outcome = await c.start();
        self.record();
        if (!outcome.ok) throw new Error(`${name} did not come back healthy: ${c.detail ?? outcome.last}\n${lastLines(c.logFile)}`);
        self.log(`${paint('green', '✔')} ${c.name} restarted on port ${c.port} (pid ${c.pid()})`);
        return c.info();
      },
      stop: () => self.stop(),
    });
  }
}

/** `0.5 s`, `60 s`. */
function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(2))} s`;
}

/** `1 restart`, `5 restarts`. */
function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** Creates an admin API key in the stack's control plane (its first shard's database). */
async function createAdminKey(topology: Topology): Promise<string> {
  const pools = new PgPools(topology.shards.slice(0, 1), { size: 1, servicePassword: undefined, applicationName: 'lb-stack' }, createLogger('stack', 'error'));
  try {
    return (await new ApiKeysRepo(pools, topology.shards[0]!.id).create('npm start')).key;
  } finally {
    await pools.close();
  }
}

/** Port of instance `i` for a base port (0 stays 0 = pick a free one). */
function base(basePort: number, i: number): number {
  return basePort === 0 ? 0 : basePort + i;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}

/** Fails early, naming the component, when a fixed port is taken (a stack from another checkout, a system service…). */
async function assertPortsFree(o: ResolvedStackOptions): Promise<void> {
  const busy: string[] = [];
  for (const { name, port } of fixedPorts(o)) {
    if (!(await portFree(port))) busy.push(`${name} port ${port}`);
  }
  if (busy.length > 0) {
    throw new Error(`ports already in use: ${busy.join(', ')}. Stop whatever holds them or choose other ports (see npm start -- --help)`);
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** A fixed-width table of the components for the terminal. */
export function formatComponentTable(components: readonly ComponentInfo[]): string {
  const cell = (n: number | undefined): string => (n === undefined ? '-' : String(n));
  return formatTable(
    ['COMPONENT', 'KIND', 'PORT', 'METRICS', 'PID', 'STATUS'],
    components.map((c) => [c.name, c.kind, cell(c.port), cell(c.metricsPort), cell(c.pid), c.status]),
    (_row, i) => components[i]!.status === 'healthy',
  );
}

/** A fixed-width table for the terminal; rows that are not `ok` are painted red. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[], ok: (row: readonly string[], i: number) => boolean): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), ...rows.map((r, i) => (ok(r, i) ? line(r) : paint('red', line(r))))].join('\n');
}
