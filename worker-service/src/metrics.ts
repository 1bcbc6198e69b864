/**
 * The worker-service's metrics (names in @lb/common's METRIC): batch sizes,
 * persistence lag (write acknowledged → its row committed), jobs by outcome,
 * and, read from each shard's Redis at scrape time, the backlog (events in
 * the outbox, not yet in Postgres) and the dead-letter size (the failed set).
 */
import { type ScoreEvent } from '@lb/common/contracts';
import { Children, LAG_BUCKETS, METRIC, Metrics, pgCallMetrics, SIZE_BUCKETS, type CallMetrics, type Counter, type Histogram } from '@lb/common/platform';

/** What a shard consumer can tell at scrape time. */
export interface ShardGauges {
  readonly shardId: string;
  /** Events written and not yet persisted (the outbox's size). */
  backlog(): Promise<number>;
  /** Jobs in the failed set. */
  deadLetters(): Promise<number>;
}

/** completed; failed (an attempt spent); deferred (Postgres unavailable: back to waiting, no attempt spent). */
export type JobOutcome = 'completed' | 'failed' | 'deferred';

export class WorkerMetrics {
  readonly registry: Metrics;
  readonly pg: CallMetrics;
  private readonly batches: Children<Histogram>;
  private readonly lags: Children<Histogram>;
  private readonly jobs: Children<Counter>;
  private readonly shards: ShardGauges[] = [];

  constructor(enabled: boolean) {
    const m = (this.registry = new Metrics(enabled, 'worker-service'));
    this.pg = pgCallMetrics(m);
    this.batches = new Children(m.histogram(METRIC.batchEvents, 'Events per Postgres batch transaction, by shard.', ['shard'], SIZE_BUCKETS));
    this.lags = new Children(m.histogram(METRIC.persistLag, 'Persistence lag: from the write\'s acknowledgement (the event\'s ts) to the commit of its row, seconds, by shard.', ['shard'], LAG_BUCKETS));
    this.jobs = new Children(m.counter(METRIC.jobs, 'Queue jobs by shard and outcome: completed; failed (an attempt failed; retried, or dead-lettered when its attempts are spent); deferred (Postgres unavailable: back to waiting, no attempt spent).', ['shard', 'outcome']));
    const each = (read: (s: ShardGauges) => Promise<number>) => async (g: { set(labels: { shard: string }, v: number): void }) => {
      await Promise.all(
        this.shards.map(async (s) => {
          try {
            g.set({ shard: s.shardId }, await read(s));
          } catch {
            // The shard's Redis is down: no sample this scrape (its errors show elsewhere).
          }
        }),
      );
    };
    m.gauge(METRIC.backlog, 'Events accepted and not yet persisted to Postgres (the shard outbox), by shard.', ['shard'], each((s) => s.backlog()));
    m.gauge(METRIC.deadLetters, 'Jobs in the shard queue\'s failed set (the dead-letter queue), waiting for `npm run replay-failed`.', ['shard'], each((s) => s.deadLetters()));
  }

  get enabled(): boolean {
    return this.registry.enabled;
  }

  /** A consumer whose gauges are read at scrape time. */
  addShard(s: ShardGauges): void {
    if (this.enabled) this.shards.push(s);
  }

  /** A committed batch: its size and each event's lag. */
  committed(shard: string, events: readonly ScoreEvent[], now = Date.now()): void {
    this.batches.get(shard).observe(events.length);
    const lag = this.lags.get(shard);
    for (const e of events) lag.observe(Math.max(0, now - e.ts) / 1000);
  }

  job(shard: string, outcome: JobOutcome): void {
    this.jobs.get(shard, outcome).inc();
  }
}
