/**
 * Moves score events from each shard's outbox (written by the write script
 * in the same atomic step as the score) onto that shard's BullMQ queue.
 *
 * The live path pushes each new event right after its write (after a short
 * linger when the relay is idle). One enqueue per shard is in flight at a
 * time; events that arrive meanwhile are sent next, together, as one job (an
 * envelope, see `scoreJob`), and then taken off the outbox index. The outbox
 * itself keeps them until the worker has persisted them: its size is the
 * backlog the write script checks. Under load jobs grow to carry whatever
 * accumulated, so BullMQ's per-job cost is shared. If the process dies
 * before the enqueue, or the queue call fails, the entries stay in the index
 * and the sweeper of any replica re-enqueues them once they are older than
 * `sweepAfterMs`. The worker's
 * upserts are version-guarded and its log is keyed by (user, version), so a
 * re-sent event is harmless.
 */
import { Queue } from 'bullmq';
import {
  MAX_EVENTS_PER_JOB,
  queuePrefix,
  SCORE_JOB,
  SCORE_QUEUE,
  scoreJob,
  type ScoreEvent,
  type ScoreJobData,
} from '@lb/common/contracts';
import {
  connectionFor,
  scoreJobOptions,
  type CallMetrics,
  eventContexts,
  inEventsSpan,
  queueTelemetry,
  SpanKind,
  tracingOn,
  type JobPolicy,
  type Logger,
} from '@lb/common/platform';
import type { ShardStore } from '../redis/shard-store.js';

export interface RelaySettings {
  keyPrefix: string;
  jobs: JobPolicy;
  sweepIntervalMs: number;
  sweepAfterMs: number;
  /** Most events in one job (and one sweep). */
  batchMax: number;
  /**
   * How long the first event of an idle relay waits for company before it is
   * enqueued, ms. The client's answer never waits for the relay, so this
   * only delays persistence a little, and it makes most jobs carry several
   * events at moderate load too (BullMQ's per-job cost is the relay's
   * largest). 0 = enqueue at once.
   */
  lingerMs: number;
  /** Envelope sizes and the enqueue's latency (undefined: metrics off). */
  metrics?: { envelope(shard: string, events: number): void; calls: CallMetrics } | undefined;
}

interface Pending {
  id: string;
  json: string;
}

/** The relay of one shard. */
export class ShardRelay {
  readonly queue: Queue;
  private pending: Pending[] = [];
  private sending: Promise<void> | undefined;
  private lingering: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: ShardStore,
    private readonly settings: RelaySettings,
    private readonly log: Logger,
  ) {
    this.queue = new Queue(SCORE_QUEUE, {
      connection: connectionFor(store.shard.redis, false),
      prefix: queuePrefix(store.shard.id, settings.keyPrefix),
      defaultJobOptions: scoreJobOptions(settings.jobs),
      skipWaitingForReady: true,
      // Tracing on: each job carries its relay.enqueue span's context to the worker.
      ...(tracingOn && { telemetry: queueTelemetry() }),
    });
    this.queue.on('error', (err) => log.debug('queue connection error', { shard: store.shard.id, err: err.message }));
  }

  /** Hands over an event just written to the outbox; sent shortly, with whatever joins it. */
  push(id: string, json: string): void {
    this.pending.push({ id, json });
    if (this.sending || this.lingering) return;
    if (this.settings.lingerMs <= 0) {
      this.sending = this.drain();
      return;
    }
    this.lingering = setTimeout(() => {
      this.lingering = undefined;
      this.sending ??= this.drain();
    }, this.settings.lingerMs);
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0, Math.min(this.settings.batchMax, MAX_EVENTS_PER_JOB));
        await this.send(batch);
      }
    } finally {
      this.sending = undefined;
    }
  }

  /**
   * Enqueues events as one job and takes them off the outbox index; on
   * failure they stay there for the sweeper. (They leave the outbox itself
   * when the worker has persisted them.)
   */
  async send(batch: Pending[]): Promise<number> {
    const events: ScoreEvent[] = [];
    const queued: string[] = [];
    const unreadable: string[] = [];
    for (const p of batch) {
      try {
        events.push(JSON.parse(p.json) as ScoreEvent);
        queued.push(p.id);
      } catch {
        this.log.error('unreadable outbox entry dropped', { shard: this.store.shard.id, id: p.id });
        unreadable.push(p.id);
      }
    }
    try {
      if (events.length > 0) {
        const { data, jobId } = scoreJob(events);
        const m = this.settings.metrics;
        if (m === undefined) await this.add(events, data, jobId);
        else {
          await m.calls.time(this.store.shard.id, 'enqueue', () => this.add(events, data, jobId));
          m.envelope(this.store.shard.id, events.length);
        }
      }
      await this.store.markQueued(queued);
      await this.store.dropOutbox(unreadable);
      return events.length;
    } catch (err) {
      this.log.warn('relay failed; the sweeper will retry', { shard: this.store.shard.id, events: batch.length, err: err as Error });
      return 0;
    }
  }

  /**
   * Adds one job. Traced (when on) as `relay.enqueue`: the child of its
   * event's write when it carries one, else a root linked to each sampled
   * event (see tracing.ts); BullMQ's own `add` span and the job's context
   * hang off it.
   */
  private add(events: readonly ScoreEvent[], data: ScoreJobData, jobId: string): Promise<unknown> {
    if (!tracingOn) return this.queue.add(SCORE_JOB, data, { jobId });
    const attributes = { 'lb.shard': this.store.shard.id, 'messaging.batch.message_count': events.length, 'messaging.message.id': jobId };
    return inEventsSpan('relay.enqueue', SpanKind.PRODUCER, attributes, eventContexts(events).contexts, 'child', () => this.queue.add(SCORE_JOB, data, { jobId }));
  }

  /** Re-enqueues outbox entries older than `sweepAfterMs`. Returns how many were sent. */
  async sweep(now = Date.now()): Promise<number> {
    const stale = await this.store.staleOutbox(now - this.settings.sweepAfterMs, this.settings.batchMax);
    if (stale.length === 0) return 0;
    const missing = stale.filter((s) => s.json === null).map((s) => s.id);
    if (missing.length > 0) await this.store.dropOutbox(missing);
    const live = stale.filter((s): s is Pending => s.json !== null);
    const sent = await this.send(live);
    if (sent > 0) this.log.info('sweeper re-enqueued outbox events', { shard: this.store.shard.id, events: sent });
    return sent;
  }

  /** Sends what is pending and closes the queue connection. */
  async close(): Promise<void> {
    clearTimeout(this.lingering);
    this.lingering = undefined;
    if (this.pending.length > 0) this.sending ??= this.drain();
    while (this.sending) await this.sending;
    await this.queue.close();
  }
}

/** One relay per shard plus the periodic sweeper. */
export class EventRelays {
  private readonly byShard = new Map<string, ShardRelay>();
  private timer: NodeJS.Timeout | undefined;
  private sweeping = false;

  constructor(
    stores: readonly ShardStore[],
    private readonly settings: RelaySettings,
    private readonly log: Logger,
  ) {
    for (const s of stores) this.byShard.set(s.shard.id, new ShardRelay(s, settings, log));
  }

  get(shardId: string): ShardRelay {
    const r = this.byShard.get(shardId);
    if (!r) throw new Error(`no relay for shard ${shardId}`);
    return r;
  }

  all(): ShardRelay[] {
    return [...this.byShard.values()];
  }

  /**
   * Waits (bounded) for the queue connections: producers do not queue
   * commands while disconnected, so a write path never hangs on a dead shard.
   */
  async ready(timeoutMs: number): Promise<void> {
    await Promise.all(
      this.all().map((r) =>
        Promise.race([
          r.queue.waitUntilReady().catch(() => undefined),
          new Promise((resolve) => setTimeout(resolve, timeoutMs).unref()),
        ]),
      ),
    );
  }

  /** Starts the sweeper (every replica runs one; duplicates are harmless). */
  start(): void {
    if (this.settings.sweepIntervalMs <= 0) return;
    this.timer = setInterval(() => void this.sweepAll(), this.settings.sweepIntervalMs);
    this.timer.unref();
  }

  async sweepAll(): Promise<number> {
    if (this.sweeping) return 0;
    this.sweeping = true;
    try {
      const counts = await Promise.all(
        this.all().map((r) =>
          r.sweep().catch((err: unknown) => {
            this.log.debug('sweep failed', { err: err as Error });
            return 0;
          }),
        ),
      );
      return counts.reduce((a, b) => a + b, 0);
    } finally {
      this.sweeping = false;
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all(this.all().map((r) => r.close()));
  }
}
