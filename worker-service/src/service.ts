/**
 * Wires the worker-service from its config: Postgres pools, the repository,
 * one consumer per shard. `close` stops them in reverse order.
 */
import { BoardsRepo, createLogger, PgPools, probe, type Logger } from '@lb/common/platform';
import type { WorkerConfig } from './config.js';
import type { BatchRepository } from './batcher.js';
import { ScoreRepository } from './db/index.js';
import { PeriodCloser } from './periods/closer.js';
import { PeriodJobs } from './periods/jobs.js';
import { WorkerMetrics } from './metrics.js';
import { UsageRollup } from './usage/rollup.js';
import { ShardConsumer, type ShardStatus } from './worker.js';

export interface WorkerService {
  readonly log: Logger;
  /** Prometheus metrics (recorders off when METRICS_PORT=0). */
  readonly metrics: WorkerMetrics;
  readonly consumers: readonly ShardConsumer[];
  /** The period closes and webhooks, run by the worker that consumes the first shard (the control plane's). */
  readonly periods: PeriodJobs | undefined;
  /** The usage rollup, run by the worker that consumes the first shard. */
  readonly usage: UsageRollup | undefined;
  /** Per-shard state and counters. */
  status(): { ok: boolean; shards: ShardStatus[] };
  /** status() plus a Redis and a Postgres round trip per shard (for GET /health). */
  health(): Promise<{ ok: boolean; instance: string; shards: (ShardStatus & { redis: string; postgres: string })[] }>;
  /** Lets every consumer finish the batch in hand, then closes the pools. Idempotent. */
  close(): Promise<void>;
}

export interface ServiceOptions {
  log?: Logger;
  /** Test seam: wraps the repository (to slow down or observe batch writes). */
  decorateRepository?: (repository: BatchRepository) => BatchRepository;
}

/** Starts consuming the configured shards' queues. */
export async function startWorkerService(config: WorkerConfig, opts: ServiceOptions = {}): Promise<WorkerService> {
  const log = opts.log ?? createLogger(config.instanceId, config.logLevel);
  const shards = config.topology.shards.filter((s) => config.shards.includes(s.id));
  const metrics = new WorkerMetrics(config.metricsPort > 0);
  const pools = new PgPools(
    shards,
    { size: config.pgPoolSize, servicePassword: config.pgServicePassword, statementTimeoutMs: config.pgStatementTimeoutMs, applicationName: config.instanceId, metrics: metrics.enabled ? metrics.pg : undefined },
    log,
  );
  const base = new ScoreRepository(pools);
  const repository = opts.decorateRepository ? opts.decorateRepository(base) : base;
  const consumers = shards.map((s) => new ShardConsumer(s, config, { repository, log, metrics: metrics.enabled ? metrics : undefined }));
  for (const c of consumers) c.start();
  const control = config.topology.shards[0]!;
  let periods: PeriodJobs | undefined;
  let closer: PeriodCloser | undefined;
  let usage: UsageRollup | undefined;
  if (config.shards.includes(control.id)) {
    const boards = new BoardsRepo(pools, control.id);
    closer = new PeriodCloser({
      topology: config.topology,
      pools,
      boards,
      keyPrefix: config.keyPrefix,
      log,
      onDelivery: (project, id) => periods!.queueDelivery(project, id),
      ...(config.testFault === 'crash-before-close-commit' && {
        beforeCommit: async () => {
          log.warn('WORKER_TEST_FAULT: dying inside a period close, before its COMMIT');
          process.kill(process.pid, 'SIGKILL');
          await new Promise(() => undefined);
        },
      }),
    });
    periods = new PeriodJobs(
      { topology: config.topology, pools, boards, closer, log },
      {
        keyPrefix: config.keyPrefix,
        graceMs: config.periodGraceMs,
        syncMs: config.periodSyncMs,
        webhookAttempts: config.webhookAttempts,
        webhookBackoffMs: config.webhookBackoffMs,
        webhookTimeoutMs: config.webhookTimeoutMs,
        lockMs: config.lockMs,
        stalledIntervalMs: config.stalledIntervalMs,
      },
    );
    periods.start();
    usage = new UsageRollup({ topology: config.topology, pools, log }, { keyPrefix: config.keyPrefix, everyMs: config.usageRollupEveryMs, graceMs: config.usageRollupGraceMs });
    await usage.start();
  }
  let closing: Promise<void> | undefined;
  return {
    log,
    metrics,
    consumers,
    periods,
    usage,
    status() {
      const all = consumers.map((c) => c.status());
      return { ok: all.every((s) => s.state === 'running'), shards: all };
    },
    async health() {
      const shardsHealth = await Promise.all(
        consumers.map(async (c) => ({
          ...c.status(),
          redis: await probe(() => c.ping()),
          postgres: await probe(() => base.ping(c.shard.id)),
        })),
      );
      const ok = shardsHealth.every((s) => s.state === 'running' && s.redis === 'ok' && s.postgres === 'ok');
      return { ok, instance: config.instanceId, shards: shardsHealth };
    },
    close() {
      closing ??= (async () => {
        const results = await Promise.allSettled([...consumers.map((c) => c.close()), periods?.close(), usage?.close(), closer?.shutdown()]);
        await pools.close();
        const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
      })();
      return closing;
    },
  };
}
