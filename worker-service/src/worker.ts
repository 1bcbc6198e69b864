/**
 * One BullMQ Worker per consumed shard, feeding a {@link Batcher} that writes
 * the shard's events to its Postgres.
 *
 * Job lifecycle: the processor validates the event (malformed → BullMQ
 * `UnrecoverableError`, failed at once), hands it to the batcher and resolves
 * only after the batch's COMMIT and the removal of its events from the
 * shard's outbox (where the backlog is counted). A failed transaction rejects every job of the
 * batch. When Postgres is unavailable (StoreUnavailable: the one
 * classification of @lb/common's pg-pools — down, refusing sessions, out of
 * connections, shutting down, a timeout or a transaction to re-run) the jobs
 * go back to waiting WITHOUT spending an attempt and the consumer pauses
 * (see {@link ShardConsumer.deferForOutage}): an outage of any length loses
 * nothing and dead-letters nothing. Any other failure is a fault: BullMQ
 * retries the job with exponential backoff until its attempts are spent,
 * then it stays in the failed set (the dead-letter queue).
 *
 * Several processes may consume the same queues: BullMQ gives each job to one
 * worker at a time, and a job delivered twice (after a crash or a lost lock)
 * is harmless because the writes are idempotent and order-proof.
 */
import { Worker, UnrecoverableError, type Job } from 'bullmq';
import {
  jobIdOf,
  queuePrefix,
  readScoreJob,
  SCORE_QUEUE,
  shardKeys,
  StoreUnavailable,
  type ScoreEvent,
  type ScoreJobData,
  type ShardDef,
  type ShardKeys,
} from '@lb/common/contracts';
import {
  connectionFor,
  endEventSpans,
  evalCached,
  eventContexts,
  inEventsSpan,
  OUTBOX_SETTLE,
  outboxSettleKeys,
  queueTelemetry,
  SpanKind,
  throttledWarn,
  tracingOn,
  type Logger,
  type ThrottledWarn,
} from '@lb/common/platform';
import { Batcher, persistBatch, type BatcherStats, type BatchRepository, type FlushFn } from './batcher.js';
import type { WorkerConfig } from './config.js';
import type { WorkerMetrics } from './metrics.js';

/** BullMQ's Redis client (ioredis) sends raw commands with `call`, which its client interface does not name. */
interface RawCommandClient {
  call(command: string, ...args: string[]): Promise<unknown>;
}

/** The slice of the configuration a shard consumer needs. */
export type ConsumerConfig = Pick<
  WorkerConfig,
  'keyPrefix' | 'batchSize' | 'batchMaxWaitMs' | 'concurrency' | 'lockMs' | 'stalledIntervalMs' | 'maxStalledCount' | 'jobBackoffMs'
>;

/** Longest pause of a shard consumer while its Postgres is unavailable, ms (the first is JOB_BACKOFF_MS, doubling). */
export const OUTAGE_PAUSE_MAX_MS = 10_000;

export interface ConsumerDeps {
  readonly repository: BatchRepository;
  readonly log: Logger;
  /** Batch sizes, lag, jobs, backlog and dead letters (undefined: metrics off). */
  readonly metrics?: WorkerMetrics | undefined;
}

export type ConsumerState = 'running' | 'closing' | 'closed';

/** A shard consumer's state and counters, as shown by /health. */
export interface ShardStatus {
  shard: string;
  state: ConsumerState;
  /** Events waiting in the batcher / batches being written now. */
  buffered: number;
  flushing: number;
  jobs: {
    /** Persisted (COMMIT done, job completed). */
    persisted: number;
    /** Failed an attempt that BullMQ retries later (a fault that may pass: attempts are spent). */
    retried: number;
    /** Put back to waiting because Postgres was unavailable (no attempt spent). */
    deferred: number;
    /** Moved to the failed set for good: malformed, refused by Postgres, or attempts spent. */
    deadLettered: number;
    /** Recovered from a crashed or stuck worker and moved back to waiting. */
    stalled: number;
  };
  batches: BatcherStats;
}

/**
 * The batch write, traced when tracing is on: `pg.batch` (the transaction,
 * and the outbox clean-up after it) is a root span linked to each sampled
 * event it holds, and each of them also gets a `persist` span, child of its
 * write's context, from the batch's start to its COMMIT: one write stays
 * one trace. Events without a sampled traceparent cost nothing here.
 */
function tracedFlush(shardId: string, flush: FlushFn<ScoreEvent>): FlushFn<ScoreEvent> {
  if (!tracingOn) return flush;
  return async (events) => {
    const { contexts, any } = eventContexts(events);
    if (!any) return flush(events);
    const started = Date.now();
    const attributes = { 'lb.shard': shardId, 'db.system.name': 'postgresql', 'messaging.batch.message_count': events.length };
    return inEventsSpan('pg.batch', SpanKind.CLIENT, attributes, contexts, 'link', async (batch) => {
      const refused = await flush(events);
      endEventSpans('persist', contexts, started, { 'lb.shard': shardId }, batch, (i) => refused[i]);
      return refused;
    });
  };
}

/** Consumes one shard's score queue. */
export class ShardConsumer {
  readonly shard: ShardDef;
  private readonly log: Logger;
  private readonly warn: ThrottledWarn;
  private readonly metrics: WorkerMetrics | undefined;
  private readonly keyPrefix: string;
  private readonly keys: ShardKeys;
  private readonly worker: Worker<ScoreJobData>;
  private readonly batcher: Batcher<ScoreEvent>;
  private readonly counters = { persisted: 0, retried: 0, deferred: 0, deadLettered: 0, stalled: 0 };
  /** Batches in a row that found Postgres unavailable (0 after a COMMIT): the pause doubles with it. */
  private outageStreak = 0;
  private readonly backoffMs: number;
  private state: ConsumerState = 'running';
  private closing: Promise<void> | undefined;

  constructor(shard: ShardDef, config: ConsumerConfig, deps: ConsumerDeps) {
    this.shard = shard;
    const log = deps.log.child(shard.id);
    this.log = log;
    this.keyPrefix = config.keyPrefix;
    this.backoffMs = config.jobBackoffMs;
    this.keys = shardKeys(shard.id, config.keyPrefix);
    const warn = throttledWarn(log, 5000);
    this.warn = warn;
    const metrics = deps.metrics;
    this.metrics = metrics;
    this.batcher = new Batcher<ScoreEvent>({ maxSize: config.batchSize, maxWaitMs: config.batchMaxWaitMs, capacity: config.concurrency }, tracedFlush(shard.id, async (events) => {
      let outcome;
      try {
        outcome = metrics
          ? await metrics.pg.time(shard.id, 'batch', () => persistBatch(shard.id, events, deps.repository))
          : await persistBatch(shard.id, events, deps.repository);
      } catch (e) {
        if (e instanceof StoreUnavailable) this.outageStreak++;
        throw e;
      }
      this.outageStreak = 0;
      if (metrics) metrics.committed(shard.id, outcome.refused.some((r) => r !== undefined) ? events.filter((_, i) => outcome.refused[i] === undefined) : events);
      // Persisted, or refused by Postgres for good: no longer backlog. If this
      // fails the batch is retried (re-applying it is harmless).
      await this.settleOutbox(events);
      if (outcome.transactions > 1) {
        log.warn('batch split to isolate events refused by postgres', {
          events: events.length,
          refused: outcome.refused.filter((r) => r !== undefined).length,
          transactions: outcome.transactions,
        });
      }
      return outcome.refused;
    }));
    this.worker = new Worker<ScoreJobData>(SCORE_QUEUE, (job) => this.process(job), {
      connection: connectionFor(shard.redis, true),
      prefix: queuePrefix(shard.id, config.keyPrefix),
      concurrency: config.concurrency,
      // Listeners are attached before the first job is fetched.
      autorun: false,
      lockDuration: config.lockMs,
      stalledInterval: config.stalledIntervalMs,
      maxStalledCount: config.maxStalledCount,
      // Long-poll for this long when idle; a new job wakes the worker at once.
      drainDelay: 5,
      // Job options decide (removeOnComplete: true); these only cover jobs added without them.
      removeOnComplete: { count: 0 },
      // Tracing on: each job is processed in a child of its relay.enqueue span.
      ...(tracingOn && { telemetry: queueTelemetry() }),
    });
    if (metrics) {
      this.worker.on('completed', () => metrics.job(shard.id, 'completed'));
      this.worker.on('failed', () => metrics.job(shard.id, 'failed'));
      metrics.addShard({
        shardId: shard.id,
        // BullMQ's client interface has no HLEN; its backend here is ioredis, which does.
        backlog: async () => ((await this.worker.getBackend().client) as unknown as { hlen(key: string): Promise<number> }).hlen(this.keys.outbox),
        deadLetters: async () => (await this.worker.getBackend().client).zcard(`${queuePrefix(shard.id, this.keyPrefix)}:${SCORE_QUEUE}:failed`),
      });
    }
    this.worker.on('failed', (job, err) => {
      const final = !job || err.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1);
      if (final) {
        this.counters.deadLettered++;
        // Dead-lettered events wait for an operator (replay-failed), not in the backlog.
        if (job) this.settleOutbox(readScoreJob(job.data).events).catch((e: unknown) => warn('outbox', 'could not take dead-lettered events off the outbox', { job: job.id, err: (e as Error).message }));
      } else this.counters.retried++;
      warn(final ? 'dead-letter' : 'retry', final ? 'job moved to the failed set' : 'job failed, will retry', {
        job: job?.id,
        attemptsMade: job?.attemptsMade,
        err: err.message,
      });
    });
    // The queue is empty: waiting for a batch to fill would only add latency.
    this.worker.on('drained', () => this.batcher.flush());
    this.worker.on('stalled', () => {
      this.counters.stalled++;
    });
    // Redis errors (connection lost, ...) repeat on every reconnect attempt.
    this.worker.on('error', (err) => warn('redis', 'worker error', { err: err.message }));
  }

  /** Starts fetching jobs. */
  start(): void {
    this.worker.run().catch((e: unknown) => this.log.error('worker stopped', { err: e }));
  }

  /**
   * Deletes events from the shard's outbox, where each stays from its write
   * until it is persisted (or dead-lettered): the outbox's size is the
   * backlog the leaderboard-service checks against QUEUE_REJECT_LENGTH.
   */
  private async settleOutbox(events: readonly ScoreEvent[]): Promise<void> {
    if (events.length === 0) return;
    // The settle script (@lb/common outbox.ts) also lowers each project's count of its events there.
    const client = (await this.worker.getBackend().client) as unknown as RawCommandClient;
    await evalCached(([command, ...args]) => client.call(command!, ...args), OUTBOX_SETTLE.sha, OUTBOX_SETTLE.source, outboxSettleKeys(this.keys, false), events.map(jobIdOf));
  }

  /** A Redis round trip on the worker's connection; rejects if it is not ready. */
  async ping(): Promise<void> {
    const client = await this.worker.getBackend().client;
    if (client.status !== 'ready') throw new Error(`redis ${client.status}`);
    await client.hget(`${queuePrefix(this.shard.id, this.keyPrefix)}:${SCORE_QUEUE}:meta`, 'version');
  }

  /**
   * Stops fetching, writes the events in hand at once (not waiting for the
   * batch to fill), and resolves after their jobs completed or failed.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.state = 'closing';
      const closed = this.worker.close();
      this.batcher.hurry();
      await closed;
      await this.batcher.drain();
      this.state = 'closed';
    })();
    return this.closing;
  }

  status(): ShardStatus {
    return {
      shard: this.shard.id,
      state: this.state,
      buffered: this.batcher.buffered,
      flushing: this.batcher.flushing,
      jobs: { ...this.counters },
      batches: { ...this.batcher.stats },
    };
  }

  /**
   * A job carries one event or an envelope of several (see `scoreJob`). Its
   * valid events go into a batch together (a job is never split between
   * transactions); the job completes once they are committed. Malformed
   * events, or events Postgres refuses for good, fail the job at once as
   * unrecoverable (its other events are persisted, so a replay after a fix
   * is harmless); any other failure retries the job.
   */
  private async process(job: Job<ScoreJobData>): Promise<void> {
    const { events, problems } = readScoreJob(job.data);
    let outcome;
    try {
      outcome = await this.batcher.add(events);
    } catch (e) {
      if (e instanceof StoreUnavailable) throw await this.deferForOutage(job, e);
      throw e;
    }
    const refused = outcome.filter((r) => r !== undefined);
    this.counters.persisted += events.length - refused.length;
    if (problems.length > 0) throw new UnrecoverableError(`malformed score event: ${problems.join('; ')}`);
    if (refused.length > 0) throw new UnrecoverableError(`refused by postgres: ${refused.join('; ')}`);
  }

  /**
   * The job's events found Postgres unavailable: the job goes back to
   * waiting with its attempts untouched, and this consumer fetches nothing
   * for a pause (JOB_BACKOFF_MS, doubling with each batch in a row that
   * found Postgres unavailable, at most {@link OUTAGE_PAUSE_MAX_MS}); the
   * next batch after it is the probe. Re-applying events is harmless (the
   * writes are idempotent and order-proof), so the job's other events,
   * committed already in another batch, may be written again.
   *
   * Why BullMQ's manual rate limit (BullMQ 6.7: `worker.rateLimit(ms)` then
   * throwing `Worker.RateLimitError()`): the worker's failure handling moves
   * the job from active back to wait (moveJobFromActiveToWait) without
   * touching attemptsMade and without a 'failed' event, and sets the worker's
   * limitUntil from the limiter key's TTL, so the consumer stops fetching
   * instead of spinning through the backlog against a database that is not
   * there. Retrying with the job's attempts (the old behaviour) dead-lettered
   * every event of an outage longer than the backoff sum; `moveToDelayed` +
   * DelayedError would keep the attempts too, but would keep fetching and
   * failing the whole backlog once per pause.
   */
  private async deferForOutage(job: Job<ScoreJobData>, outage: StoreUnavailable): Promise<Error> {
    this.counters.deferred++;
    this.metrics?.job(this.shard.id, 'deferred');
    const pauseMs = Math.min(this.backoffMs * 2 ** Math.max(0, Math.min(this.outageStreak - 1, 20)), OUTAGE_PAUSE_MAX_MS);
    this.warn('outage', 'postgres unavailable; jobs put back to wait, attempts kept', { job: job.id, pause_ms: pauseMs, err: (outage.cause as Error | undefined)?.message ?? outage.message });
    // deprecated in favour of Queue.rateLimit, which sets the same key; the
    // consumer holds no Queue. If Redis fails here the job still goes back
    // to wait (no pause), which is what matters.
    await this.worker.rateLimit(pauseMs).catch(() => undefined);
    return Worker.RateLimitError();
  }
}
