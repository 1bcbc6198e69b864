/**
 * worker-service configuration: one typed, frozen object built from the
 * environment; any bad value stops start-up with the key's name.
 */
import { type Topology } from '@lb/common/contracts';
import {
  enumKey,
  JOB_ATTEMPTS,
  JOB_BACKOFF_MS,
  PG_POOL_SIZE,
  PG_SERVICE_PASSWORD,
  ConfigError,
  intKey,
  KEY_PREFIX,
  LOG_LEVEL,
  loadTopology,
  optionalKey,
  readKeys,
  stringKey,
  type Env,
  type JobPolicy,
  TOPOLOGY_FILE_KEY,
  TOPOLOGY_KEY,
  type ConfigKey,
  metricsPortKey,
  METRICS_HOST,
  tracingKeys,
} from '@lb/common/platform';

const SPEC = {
  metricsPort: metricsPortKey(9103),
  metricsHost: METRICS_HOST,
  ...tracingKeys('worker-service'),
  instanceId: stringKey('INSTANCE_ID', 'Name of this process in logs and /health.', { default: 'worker-1' }),
  shards: stringKey('WORKER_SHARDS', 'Shards whose score queue this process consumes: comma-separated shard ids, or "all".', {
    default: 'all',
  }),
  batchSize: intKey('BATCH_SIZE', 'Most events written to Postgres in one transaction (whole jobs: a job is never split, so an envelope of more is a transaction of its own).', { default: 500, min: 1, max: 10_000 }),
  batchMaxWaitMs: intKey('BATCH_MAX_WAIT_MS', 'Longest a partial batch waits for more events before it is written, ms.', {
    default: 50,
    min: 0,
    max: 60_000,
  }),
  concurrency: intKey(
    'WORKER_CONCURRENCY',
    'Jobs held at once per shard (BullMQ worker concurrency); 0 = min(2 x BATCH_SIZE, 200). A job carries one event or an envelope of up to RELAY_ENVELOPE_MAX events.',
    { default: 0, min: 0, max: 50_000 },
  ),
  // Shared keys (common/settings.ts): leaderboard-service applies them when it
  // enqueues (BullMQ keeps the policy on the job); here they are only reported.
  jobAttempts: JOB_ATTEMPTS,
  jobBackoffMs: JOB_BACKOFF_MS,
  lockMs: intKey('WORKER_LOCK_MS', 'BullMQ job lock duration, ms: a crashed worker\'s jobs are retried after about this long.', {
    default: 30_000,
    min: 500,
    max: 600_000,
  }),
  stalledIntervalMs: intKey('WORKER_STALLED_INTERVAL_MS', 'How often jobs of crashed workers are looked for and moved back to waiting, ms.', {
    default: 30_000,
    min: 500,
    max: 600_000,
  }),
  maxStalledCount: intKey(
    'WORKER_MAX_STALLED',
    'Times a job may be recovered from a crashed worker before it is failed (writes are idempotent, so a retry is harmless).',
    { default: 3, min: 0, max: 100 },
  ),
  keyPrefix: KEY_PREFIX,
  logLevel: LOG_LEVEL,
  pgPoolSize: PG_POOL_SIZE,
  pgServicePassword: PG_SERVICE_PASSWORD,
  pgStatementTimeoutMs: intKey('PG_STATEMENT_TIMEOUT_MS', 'A batch statement running longer than this is cancelled and retried, ms.', {
    default: 30_000,
    min: 100,
    max: 600_000,
  }),
  periodGraceMs: intKey('PERIOD_GRACE_MS', 'How long after a board period ends its close waits for writes in flight, ms (replicas whose clocks lag by more get 409 period_closed).', { default: 5000, min: 0, max: 3_600_000 }),
  usageRollupEveryMs: intKey('USAGE_ROLLUP_EVERY_MS', 'How often a worker rolls the shards\' hourly usage counters up into Postgres (usage_hourly), ms; a BullMQ job scheduler on the first shard runs it.', { default: 60_000, min: 100, max: 3_600_000 }),
  usageRollupGraceMs: intKey('USAGE_ROLLUP_GRACE_MS', 'How long after an hour ends its usage counters may still grow (a replica\'s last flush) before the rollup closes it, ms.', { default: 120_000, min: 0, max: 3_600_000 }),
  periodSyncMs: intKey('PERIOD_SYNC_MS', 'How often the worker that consumes the first shard brings the period job schedulers in step with the boards, ms.', { default: 5000, min: 100, max: 3_600_000 }),
  webhookAttempts: intKey('WEBHOOK_ATTEMPTS', 'Attempts of a period.closed webhook delivery before it is kept as failed for replay.', { default: 8, min: 1, max: 100 }),
  webhookBackoffMs: intKey('WEBHOOK_BACKOFF_MS', 'First retry delay of a webhook delivery, ms; doubles on each attempt.', { default: 1000, min: 10, max: 3_600_000 }),
  webhookTimeoutMs: intKey('WEBHOOK_TIMEOUT_MS', 'A webhook receiver that has not answered in this time counts as a failed attempt, ms.', { default: 10_000, min: 100, max: 300_000 }),
  testFault: enumKey('WORKER_TEST_FAULT', 'Tests only: crash-before-close-commit kills the process inside a period close, after its standings are written and before the COMMIT.', ['off', 'crash-before-close-commit'], 'off'),
  healthHost: stringKey('HEALTH_HOST', 'Address of the worker-service /health endpoint.', { default: '127.0.0.1' }),
} as const;

const HEALTH_PORT = optionalKey('HEALTH_PORT', 'Port of the worker-service /health endpoint (0 = any free port; empty = no endpoint).');

/** Every key this service reads (for .env.example), topology keys included. */
export const CONFIG_KEYS: readonly ConfigKey<unknown>[] = [...Object.values(SPEC), HEALTH_PORT, TOPOLOGY_KEY, TOPOLOGY_FILE_KEY];

export type WorkerConfig = Omit<ReturnType<typeof readKeys<typeof SPEC>>, 'shards'> & {
  readonly topology: Topology;
  /** Shard ids consumed by this process, in topology order. */
  readonly shards: readonly string[];
  /** Effective BullMQ concurrency per shard (WORKER_CONCURRENCY resolved). */
  readonly concurrency: number;
  /** Retry policy of score jobs, for `scoreJobOptions`. */
  readonly jobPolicy: JobPolicy;
  /** undefined = no health endpoint. */
  readonly healthPort: number | undefined;
};

/** Loads and validates the configuration; throws ConfigError naming the key. */
export function loadConfig(env: Env = process.env): WorkerConfig {
  const base = readKeys(SPEC, env);
  const topology = loadTopology(env);
  return Object.freeze({
    ...base,
    topology,
    shards: Object.freeze(parseShards(base.shards, topology)),
    concurrency: base.concurrency === 0 ? Math.min(2 * base.batchSize, 200) : base.concurrency,
    jobPolicy: Object.freeze({ attempts: base.jobAttempts, backoffMs: base.jobBackoffMs }),
    healthPort: parsePort(HEALTH_PORT.read(env)),
  });
}

function parseShards(raw: string, topology: Topology): string[] {
  const known = topology.shards.map((s) => s.id);
  if (raw.toLowerCase() === 'all') return known;
  const wanted = raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (wanted.length === 0) throw new ConfigError('WORKER_SHARDS', 'must list at least one shard id, or be "all"');
  for (const id of wanted) {
    if (!known.includes(id)) throw new ConfigError('WORKER_SHARDS', `unknown shard "${id}" (topology has ${known.join(', ')})`);
  }
  // Topology order, duplicates dropped.
  return known.filter((id) => wanted.includes(id));
}

function parsePort(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n > 65535) throw new ConfigError('HEALTH_PORT', `must be a port number 0-65535 or empty, got "${raw}"`);
  return n;
}
