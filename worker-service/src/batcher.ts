/**
 * Batching of score events between BullMQ and Postgres.
 *
 * BullMQ hands the worker one job at a time, but with a high concurrency many
 * jobs are in hand at once. Each job's processor calls {@link Batcher.add} and
 * waits; the batcher gathers events until it holds `maxSize` of them or the
 * oldest has waited `maxWaitMs`, writes them in one transaction, and only then
 * settles every waiting promise (so a job completes only after COMMIT, and a
 * failed transaction fails, and BullMQ retries, every job of the batch).
 *
 * Nothing here knows BullMQ or pg: {@link persistBatch} takes the repository
 * as a dependency, and the batcher takes the flush function.
 */
import type { ScoreEvent } from '@lb/common/contracts';
import { InvalidBatchError, type ApplyResult } from './db/index.js';

/** What {@link persistBatch} needs from the repository. */
export interface BatchRepository {
  applyBatch(shardId: string, events: readonly ScoreEvent[]): Promise<ApplyResult>;
}

/** Result of writing one batch. */
export interface PersistOutcome {
  /** Counts summed over the transactions it took. */
  readonly counts: ApplyResult;
  /** Per event (same index): undefined = persisted, else why Postgres refused it for good. */
  readonly refused: readonly (string | undefined)[];
  /** Transactions used: 1, more when the batch had to be split to find poison events. */
  readonly transactions: number;
}

/**
 * Writes one shard's events through the repository in one transaction. If
 * Postgres refuses the data (an event no validation caught), the batch is
 * split in halves until the offending events stand alone; they are reported
 * as refused and every other event is persisted. Any other error (Postgres
 * down, timeout, deadlock) rejects: the whole batch is to be retried, which is
 * safe because the writes are idempotent.
 */
export async function persistBatch(
  shardId: string,
  events: readonly ScoreEvent[],
  repository: BatchRepository,
): Promise<PersistOutcome> {
  const refused: (string | undefined)[] = new Array<string | undefined>(events.length).fill(undefined);
  const counts = { events: 0, inserted: 0, players: 0, upserted: 0 };
  let transactions = 0;
  const apply = async (from: number, to: number): Promise<void> => {
    transactions++;
    try {
      const r = await repository.applyBatch(shardId, events.slice(from, to));
      counts.events += r.events;
      counts.inserted += r.inserted;
      counts.players += r.players;
      counts.upserted += r.upserted;
    } catch (e) {
      if (!(e instanceof InvalidBatchError)) throw e;
      if (to - from === 1) {
        refused[from] = e.message;
        return;
      }
      const mid = from + ((to - from) >>> 1);
      await apply(from, mid);
      await apply(mid, to);
    }
  };
  if (events.length > 0) await apply(0, events.length);
  return { counts, refused, transactions };
}

/** An item the flush refused for good (it will never succeed). */
export class RefusedItemError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'RefusedItemError';
  }
}

/** Writes a batch; per item, undefined = done, or the reason it is refused for good. Rejects = retry all. */
export type FlushFn<T> = (items: T[]) => Promise<readonly (string | undefined)[]>;

export interface BatcherOptions {
  /** Flush as soon as this many items are buffered. */
  readonly maxSize: number;
  /** Flush a partial batch this long after its first item arrived (0 = on the next turn of the event loop). */
  readonly maxWaitMs: number;
  /**
   * Most items the caller can have in hand at once (BullMQ concurrency). When
   * every one of them is buffered or being written, no further item can
   * arrive before a flush, so a partial batch is written at once instead of
   * waiting for the timer. Default: unlimited.
   */
  readonly capacity?: number;
  /**
   * Most batches written at once (default 2: one commits while the next
   * fills). Further full batches wait in the buffer; without this bound a
   * queue of large envelopes would open a transaction per batch at once and
   * exhaust the connection pool.
   */
  readonly maxInFlight?: number;
}

/** Counters of a batcher, for health reporting. */
export interface BatcherStats {
  batches: number;
  items: number;
  failedBatches: number;
  refusedItems: number;
  lastBatchSize: number;
  lastBatchMs: number;
  lastError: string | undefined;
  lastErrorAt: number | undefined;
}

interface Pending<T> {
  item: T;
  resolve: () => void;
  reject: (e: Error) => void;
}

/** Gathers items into batches; see the module comment. */
export class Batcher<T> {
  readonly stats: BatcherStats = {
    batches: 0,
    items: 0,
    failedBatches: 0,
    refusedItems: 0,
    lastBatchSize: 0,
    lastBatchMs: 0,
    lastError: undefined,
    lastErrorAt: undefined,
  };
  private buffer: Pending<T>[] = [];
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private inFlightItems = 0;
  private urgent = false;

  constructor(
    private readonly opts: BatcherOptions,
    private readonly flushFn: FlushFn<T>,
  ) {
    if (!(opts.maxSize >= 1)) throw new RangeError('maxSize must be >= 1');
  }

  /** Items buffered, not yet being written. */
  get buffered(): number {
    return this.buffer.length;
  }

  /** Batches being written right now. */
  get flushing(): number {
    return this.inFlight.size;
  }

  /** Resolves once the item is durably written; rejects if its batch failed (or with RefusedItemError). */
  add(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.buffer.push({ item, resolve, reject });
      const full = this.buffer.length >= this.opts.maxSize;
      const starved = this.opts.capacity !== undefined && this.buffer.length + this.inFlightItems >= this.opts.capacity;
      if (full || starved) this.flush();
      else if (this.timer === undefined) this.schedule();
    });
  }

  /** Starts writing whatever is buffered now, up to `maxInFlight` batches at once; the rest follows as writes finish. */
  flush(): void {
    this.cancelTimer();
    const maxInFlight = this.opts.maxInFlight ?? 2;
    while (this.buffer.length > 0 && this.inFlight.size < maxInFlight) {
      const batch = this.buffer.splice(0, this.opts.maxSize);
      this.inFlightItems += batch.length;
      const p = this.write(batch).finally(() => {
        this.inFlight.delete(p);
        this.inFlightItems -= batch.length;
        // Full batches held back by the in-flight bound go now; a partial one
        // keeps waiting for its timer (or the capacity / drained signals).
        if (this.buffer.length >= this.opts.maxSize || this.urgent) this.flush();
        else if (this.buffer.length > 0 && this.timer === undefined) this.schedule();
      });
      this.inFlight.add(p);
    }
  }

  /**
   * From now on, writes every item on the next turn of the event loop instead
   * of waiting for a batch to fill (used while shutting down), and writes
   * what is buffered now.
   */
  hurry(): void {
    this.urgent = true;
    this.flush();
  }

  /** Writes everything buffered and waits for every batch in flight. */
  async drain(): Promise<void> {
    this.flush();
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private schedule(): void {
    const run = () => {
      this.timer = undefined;
      this.flush();
    };
    this.timer = this.urgent || this.opts.maxWaitMs === 0 ? setImmediate(run) : setTimeout(run, this.opts.maxWaitMs);
  }

  private cancelTimer(): void {
    if (this.timer === undefined) return;
    clearTimeout(this.timer as NodeJS.Timeout);
    clearImmediate(this.timer as NodeJS.Immediate);
    this.timer = undefined;
  }

  private async write(batch: Pending<T>[]): Promise<void> {
    const started = performance.now();
    let outcome: readonly (string | undefined)[];
    try {
      outcome = await this.flushFn(batch.map((p) => p.item));
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      this.stats.failedBatches++;
      this.stats.lastError = err.message;
      this.stats.lastErrorAt = Date.now();
      for (const p of batch) p.reject(err);
      return;
    }
    this.stats.batches++;
    this.stats.items += batch.length;
    this.stats.lastBatchSize = batch.length;
    this.stats.lastBatchMs = Math.round(performance.now() - started);
    batch.forEach((p, i) => {
      const reason = outcome[i];
      if (reason === undefined) {
        p.resolve();
      } else {
        this.stats.refusedItems++;
        p.reject(new RefusedItemError(reason));
      }
    });
  }
}
