/**
 * Moves score events from each shard's outbox (written by the write script
 * in the same atomic step as the score) onto that shard's BullMQ queue.
 *
 * One relay per shard sends, whichever replica it runs in: every replica
 * runs a relay for every shard, and the one holding the shard's relay lease
 * (a Redis key that expires, renewed on every turn) takes the oldest events
 * of the outbox index every `lingerMs` — or at once again after a full
 * envelope — and enqueues them as one job (an envelope, see `scoreJob`).
 * The others ask again when the lease would expire, so a replica that dies
 * is replaced within `leaseMs`. A shard's envelope count is thus set by the
 * linger and not by the number of replicas (at 1,000 writes/s over three
 * shards and a 500 ms linger, jobs of ~170 events, capped by `batchMax`), and
 * a job, its BullMQ scripts, the worker's fetch of it and usually its Postgres
 * transaction are shared by all of them.
 *
 * A turn is one script (lua/relay-take.lua: the lease and the envelope),
 * the job's enqueue, and the envelope's removal from the outbox index: an
 * event leaves the index only once its job is on the queue, and leaves the
 * outbox itself only when the worker has persisted it (its size is the
 * backlog the write script checks). A relay that dies between an enqueue
 * and that removal leaves the envelope in the index and its successor
 * enqueues it again; a failed enqueue is taken again on the next turn. The
 * worker's upserts are version-guarded and its log is keyed by (user,
 * version), so a re-sent event is harmless.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
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
  connectionEnded,
  connectionFor,
  scoreJobOptions,
  type CallMetrics,
  eventContexts,
  inEventsSpan,
  queueTelemetry,
  SpanKind,
  tracingOn,
  throttledWarn,
  type JobPolicy,
  type Logger,
  type ThrottledWarn,
} from '@lb/common/platform';
import type { ShardStore } from '../redis/shard-store.js';

export interface RelaySettings {
  keyPrefix: string;
  jobs: JobPolicy;
  /** Most events in one job: a full envelope is followed by the next turn at once. */
  batchMax: number;
  /**
   * Time between the holder's turns when the last one was not full, ms: the
   * longest an event waits for others to share its job. The client's answer
   * never waits for the relay, so this only delays persistence (the lag
   * budget is 1 s at p99), and it is what makes jobs carry many events at
   * every load (the per-job costs are most of the pipeline's).
   */
  lingerMs: number;
  /**
   * How long a turn holds the shard's lease, ms (more than `lingerMs`): the
   * longest a shard goes without a relay after its holder died.
   */
  leaseMs: number;
  /** Envelope sizes and the enqueue's latency (undefined: metrics off). */
  metrics?: { envelope(shard: string, events: number): void; calls: CallMetrics } | undefined;
}

/** The relay of one shard in this replica. */
export class ShardRelay {
  private current: Queue;
  /** This relay's name in the lease. */
  readonly id: string;
  private running: Promise<void> | undefined;
  private closing = false;
  private sleeping: { timer: NodeJS.Timeout; wake: () => void } | undefined;
  private readonly warn: ThrottledWarn;

  constructor(
    private readonly store: ShardStore,
    private readonly settings: RelaySettings,
    private readonly log: Logger,
  ) {
    this.id = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
    this.warn = throttledWarn(log, 5000);
    this.current = this.openQueue();
  }

  /** The queue this relay enqueues to now (made again when its connection ends for good). */
  get queue(): Queue {
    return this.current;
  }

  private openQueue(): Queue {
    const queue = new Queue(SCORE_QUEUE, {
      connection: connectionFor(this.store.shard.redis, false),
      prefix: queuePrefix(this.store.shard.id, this.settings.keyPrefix),
      defaultJobOptions: scoreJobOptions(this.settings.jobs),
      skipWaitingForReady: true,
      // Tracing on: each job carries its relay.enqueue span's context to the worker.
      ...(tracingOn && { telemetry: queueTelemetry() }),
    });
    queue.on('error', (err) => this.log.debug('queue connection error', { shard: this.store.shard.id, err: err.message }));
    return queue;
  }

  /** A Queue whose connection ended for good (connectionEnded) is made again: the events wait in the outbox meanwhile. */
  private reopenQueue(): void {
    const ended = this.current;
    this.current = this.openQueue();
    this.log.warn('relay queue connection ended for good; made a new one', { shard: this.store.shard.id });
    void ended.disconnect().catch(() => undefined);
  }

  private get most(): number {
    return Math.min(this.settings.batchMax, MAX_EVENTS_PER_JOB);
  }

  /** Starts taking turns. */
  start(): void {
    this.running ??= this.loop();
  }

  private async loop(): Promise<void> {
    while (!this.closing) {
      let waitMs: number;
      try {
        waitMs = await this.turn();
      } catch (err) {
        this.warn('turn', 'relay turn failed; the events stay in the outbox index for the next one', { shard: this.store.shard.id, err: err as Error });
        if (connectionEnded(err)) this.reopenQueue();
        waitMs = this.settings.lingerMs;
      }
      if (waitMs > 0 && !this.closing) await this.sleep(waitMs);
    }
  }

  /**
   * One turn: enqueues the next envelope if this relay holds (or takes) the
   * lease. Returns how long to wait before the next turn.
   */
  async turn(): Promise<number> {
    const t = await this.store.relayTake(this.id, this.settings.leaseMs, this.most);
    if (t.kind === 'busy') return Math.max(this.settings.lingerMs, t.ttlMs + 1);
    if (t.kind !== 'ok' || t.ids.length === 0) return this.settings.lingerMs;
    await this.send(t.ids, t.events);
    return t.ids.length >= this.most ? 0 : this.settings.lingerMs;
  }

  /**
   * Enqueues events as one job and takes them off the outbox index. If the
   * enqueue fails they stay there and the next turn takes them again.
   * Unreadable entries (not JSON) leave the outbox for good.
   */
  private async send(ids: readonly string[], jsons: readonly string[]): Promise<void> {
    const events: ScoreEvent[] = [];
    const queued: string[] = [];
    const unreadable: string[] = [];
    ids.forEach((id, i) => {
      try {
        events.push(JSON.parse(jsons[i]!) as ScoreEvent);
        queued.push(id);
      } catch {
        this.log.error('unreadable outbox entry dropped', { shard: this.store.shard.id, id });
        unreadable.push(id);
      }
    });
    if (unreadable.length > 0) await this.store.dropOutbox(unreadable);
    if (events.length === 0) return;
    const { data, jobId } = scoreJob(events);
    const m = this.settings.metrics;
    if (m === undefined) await this.add(events, data, jobId);
    else {
      await m.calls.time(this.store.shard.id, 'enqueue', () => this.add(events, data, jobId));
      m.envelope(this.store.shard.id, events.length);
    }
    await this.store.markQueued(queued);
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

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleeping = undefined;
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleeping = { timer, wake };
    });
  }

  /**
   * Stops taking turns; if this relay holds the lease, enqueues what the
   * index holds (without lingering) and gives the lease up, so the next
   * holder starts at once. Then closes the queue connection.
   */
  async close(): Promise<void> {
    this.closing = true;
    this.sleeping?.wake();
    await this.running;
    try {
      for (;;) {
        const t = await this.store.relayTake(this.id, this.settings.leaseMs, this.most);
        if (t.kind !== 'ok' || t.ids.length === 0) break;
        await this.send(t.ids, t.events);
      }
      await this.store.relayTake(this.id, 0, this.most);
    } catch (err) {
      this.log.warn('relay could not hand over on close; its lease expires instead', { shard: this.store.shard.id, err: err as Error });
    }
    await this.queue.close();
  }
}

/** One relay per shard. */
export class EventRelays {
  private readonly byShard = new Map<string, ShardRelay>();

  constructor(
    stores: readonly ShardStore[],
    settings: RelaySettings,
    log: Logger,
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
   * commands while disconnected, so a relay never hangs on a dead shard.
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

  /** Starts every shard's relay (every replica runs them; one per shard holds its lease). */
  start(): void {
    for (const r of this.all()) r.start();
  }

  async close(): Promise<void> {
    await Promise.all(this.all().map((r) => r.close()));
  }
}
