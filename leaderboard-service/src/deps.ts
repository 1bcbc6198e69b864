/**
 * Wires the service's dependencies from its config. Start-up order is
 * connect Redis, check Postgres; `close` stops them in reverse.
 */
import { ShardRouter } from '@lb/common/contracts';
import { BoardsRepo, PgPools, createLogger, type Logger } from '@lb/common/platform';
import { AccountService } from './accounts/accounts.js';
import { BoardAdmin } from './boards/admin.js';
import { BoardCatalog } from './boards/catalog.js';
import { BoardWriter, type AfterRedisWriteHook } from './boards/scores.js';
import { BoardViews } from './boards/views.js';
import { ApiKeysRepo } from './db/api-keys-repo.js';
import { AuditRepo, quotaTarget } from './db/audit-repo.js';
import { ProjectsRepo, TenantsRepo } from './db/tenants-repo.js';
import { Credentials } from './http/credentials.js';
import { ProjectReads } from './http/project-reads.js';
import { ArchiveRepo } from './db/archive-repo.js';
import { HashSlots } from './accounts/hash-slots.js';
import { LoginGuard } from './accounts/login-guard.js';
import { loginLimitsOf, type ServiceConfig } from './config.js';
import { AccountsRepo } from './db/accounts-repo.js';
import { HistoryRepo } from './db/history-repo.js';
import { NoTopCache, TopCache, type TopPages } from './leaderboard/top-cache.js';
import { EventRelays } from './events/relay.js';
import { ShardStores } from './redis/shard-store.js';
import { upgradeLayouts } from './recovery/layout.js';
import { ServiceMetrics } from './metrics.js';
import { randomBytes } from 'node:crypto';
import { LiveChannels } from './live/publisher.js';
import { LiveRegistry } from './live/registry.js';
import { NchanClient } from './live/nchan.js';
import { livePayloads } from './routes/live.js';
import { Meter } from './usage/meter.js';
import { UsageReport } from './usage/report.js';
import { UsageRepo } from './db/usage-repo.js';

export interface Deps {
  log: Logger;
  /** Prometheus metrics (recorders off when METRICS_PORT=0). */
  metrics: ServiceMetrics;
  router: ShardRouter;
  stores: ShardStores;
  pools: PgPools;
  /** The top-page cache the reads share (NoTopCache when off). */
  topCache: TopPages;
  /** Every board's writes (`main` included: the original endpoints and registration). */
  writer: BoardWriter;
  /** Every board's reads. */
  views: BoardViews;
  accounts: AccountService;
  relays: EventRelays;
  accountsRepo: AccountsRepo;
  history: HistoryRepo;
  catalog: BoardCatalog;
  boardAdmin: BoardAdmin;
  /** What boards' current periods are decided by. */
  clock: () => number;
  /** Every request's key and token, resolved into its project (http/credentials.ts). */
  credentials: Credentials;
  /** Each project's reads per second, by its plan (http/project-reads.ts). */
  projectReads: ProjectReads;
  apiKeysRepo: ApiKeysRepo;
  /** The audit log of administrative actions (sql/012_audit.sql). */
  audit: AuditRepo;
  tenants: TenantsRepo;
  projects: ProjectsRepo;
  /** Live pushes: the channels this replica publishes to nginx's push module, fed by the top-page cache's change subscriptions; a publisher once its server listens (app.ts `buildServer`), not before. */
  live: LiveChannels;
  /** Metered usage and each tenant's monthly quota (usage/meter.ts). */
  meter: Meter;
  /** Usage answers: rolled-up rows merged with the live counters. */
  usage: UsageReport;
  close(): Promise<void>;
}

export interface DepsOptions {
  log?: Logger;
  /** Test-only hook run after the Redis write, before the event is queued. */
  afterRedisWrite?: AfterRedisWriteHook;
  /** The clock boards' periods are decided by (tests move it across a boundary). */
  clock?: () => number;
}

export async function createDeps(config: ServiceConfig, opts: DepsOptions = {}): Promise<Deps> {
  const log = opts.log ?? createLogger(config.instanceId, config.logLevel);
  const router = new ShardRouter(config.topology);
  const metrics = new ServiceMetrics(config.metricsPort > 0, Object.keys(config.topology.regions));
  const on = metrics.enabled;
  const stores = new ShardStores(router.shards, config.keyPrefix, config.redisCommandTimeoutMs, log, on ? metrics.redis : undefined);
  const pools = new PgPools(
    router.shards,
    { size: config.pgPoolSize, servicePassword: config.pgServicePassword, queryTimeoutMs: config.pgQueryTimeoutMs, applicationName: config.instanceId, metrics: on ? metrics.pg : undefined },
    log,
  );
  await stores.connect(log);
  metrics.replication(stores.all());
  // A shard still in main's layout from before the board engine is converted before anything is served from it.
  const stopUpgrades = await upgradeLayouts(stores.all(), router.regions, log);
  const topCache =
    config.topCacheMaxAgeMs > 0
      ? // A view's pages are `<tenant>/<project>/<board>/<period>/<view>`: the view says which shards it spans.
        new TopCache(stores.all(), config.topCacheMaxAgeMs, (key) => router.shardsForBoard(key.slice(key.lastIndexOf('/') + 1)).map((s) => s.id), on ? metrics.topCache : undefined)
      : new NoTopCache();
  const relays = new EventRelays(
    stores.all(),
    {
      keyPrefix: config.keyPrefix,
      jobs: { attempts: config.jobAttempts, backoffMs: config.jobBackoffMs },
      batchMax: config.relayEnvelopeMax,
      lingerMs: config.relayLingerMs,
      leaseMs: config.relayLeaseMs,
      metrics: metrics.relay(),
    },
    log,
  );
  await relays.ready(config.redisCommandTimeoutMs);
  relays.start();
  const afterRedisWrite = opts.afterRedisWrite ?? faultHook(config.testFault, log);
  const accountsRepo = new AccountsRepo(pools);
  const guard = new LoginGuard(router, stores, loginLimitsOf(config));
  const slots = new HashSlots(config.hashConcurrency, config.hashQueueMax);
  // The control plane lives in the first shard's database.
  const controlShard = router.shards[0]!.id;
  const boardsRepo = new BoardsRepo(pools, controlShard);
  const catalog = new BoardCatalog(boardsRepo, config.boardRefreshMs, log, config.maxScore);
  await catalog.start();
  const boardAdmin = new BoardAdmin(boardsRepo, catalog, stores);
  const apiKeysRepo = new ApiKeysRepo(pools, controlShard);
  const projects = new ProjectsRepo(pools, controlShard);
  const credentials = new Credentials(apiKeysRepo, projects, config.token, config.apiKeyCacheMs);
  const clock = opts.clock ?? Date.now;
  const audit = new AuditRepo(pools, controlShard);
  const meter = new Meter({
    router,
    stores,
    clock,
    log,
    settings: { flushMs: config.usageFlushMs, usageTtlS: config.usageLiveTtlS },
    // Each threshold is answered once a month by the tenant's shard; the audit row is once per month too (a unique index).
    onCrossed: (c) =>
      void audit
        .append({ tenant: c.tenant, key: null, action: c.percent >= 100 ? 'quota.exceeded' : 'quota.warning', target: quotaTarget(c.month, c.percent), change: { after: { percent: c.percent, used: c.used, limit: c.limit } } }, { once: true })
        .catch((e: unknown) => log.warn('quota event not recorded', { tenant: c.tenant, percent: c.percent, err: e as Error })),
  });
  meter.start();
  const writer = new BoardWriter(
    { router, stores, log, clock, meter, metrics, afterRedisWrite },
    {
      idempotencyTtlS: config.idempotencyTtlS,
      backlogLimit: config.queueRejectLength,
      buckets: {
        user: { capacity: config.userRateLimitCount, windowMs: config.userRateLimitWindowMs },
        region: { capacity: config.regionRateLimitCount, windowMs: config.regionRateLimitWindowMs },
      },
      usageTtlS: config.usageLiveTtlS,
    },
  );
  const views = new BoardViews(router, stores, new ArchiveRepo(pools, controlShard), topCache, clock);
  const accounts = new AccountService({ router, repo: accountsRepo, catalog, writer, views, slots, guard, log }, config.token, {
    memoryCost: config.argon2MemoryKib,
    timeCost: config.argon2TimeCost,
  });
  const live = new LiveChannels(
    { changes: topCache, registry: new LiveRegistry(stores), nchan: new NchanClient(config.livePublishUrl, config.redisCommandTimeoutMs), router, compute: livePayloads({ catalog, views }), delivered: (project, n) => meter.count(project, 'event', n) },
    // A restarted replica is a new member: the old one's channels move on only once, when its heartbeat ages out.
    { member: `${config.instanceId}/${randomBytes(4).toString('hex')}`, refreshMs: config.liveRefreshMs, clock, log, counters: on ? metrics.live : undefined },
  );
  return {
    log,
    metrics,
    router,
    catalog,
    boardAdmin,
    views,
    clock,
    credentials,
    projectReads: new ProjectReads(router, stores),
    apiKeysRepo,
    audit,
    tenants: new TenantsRepo(pools, controlShard),
    projects,
    live,
    meter,
    usage: new UsageReport({ router, stores, repo: new UsageRepo(pools, controlShard) }),
    stores,
    pools,
    topCache,
    writer,
    accounts,
    relays,
    accountsRepo,
    history: new HistoryRepo(pools),
    async close() {
      stopUpgrades();
      await live.close();
      await meter.stop().catch(() => undefined);
      catalog.stop();
      await relays.close();
      await topCache.close();
      await stores.close();
      await pools.close();
    },
  };
}

/**
 * TEST_FAULT=crash-after-redis-write kills the process right after a write
 * (to any board) reached Redis, before its answer and before a relay of
 * this process could enqueue its event: the outbox tests use it to prove
 * such a write still gets persisted.
 */
function faultHook(fault: string, log: Logger): AfterRedisWriteHook | undefined {
  if (fault !== 'crash-after-redis-write') return undefined;
  log.warn('TEST_FAULT is on: the process dies after its first Redis write');
  return () => {
    process.kill(process.pid, 'SIGKILL');
  };
}
