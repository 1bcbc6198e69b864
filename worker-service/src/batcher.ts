/**
 * Batching of score events between BullMQ and Postgres.
 *
 * BullMQ hands the worker one job at a time, but with a high concurrency many
 * jobs are in hand at once. Each job's processor calls {@link Batcher.add}
 * with the job's events (one, or an envelope of many) and waits; the batcher
 * gathers whole jobs until it holds `maxSize` events or the oldest has waited
 * `maxWaitMs`, writes them in one transaction, and only then settles the
 * jobs' promises, one per job (so a job completes only after COMMIT, and a
 * failed transaction fails, and BullMQ retries, every job of the batch).
 *
 * Nothing here knows BullMQ or pg: {@link persistBatch} takes the repository
 * as a dependency, and the batcher takes the flush function.
 */
import { DEFAULT_PROJECT, projectScope, type ProjectRef, type ScoreEvent } from '@lb/common/contracts';
import { InvalidBatchError, type ApplyResult } from './db/index.js';

/** What {@link persistBatch} needs from the repository. */
export interface BatchRepository {
  /** Writes events of one project in one transaction of its row scope. */
  applyBatch(shardId: string, project: ProjectRef, events: readonly ScoreEvent[]): Promise<ApplyResult>;
}

/** The project an event belongs to: its tenant and project, or (neither, e.g. queued before tenancy) the default project. */
export function projectOf(e: ScoreEvent): ProjectRef {
  return e.tenant !== undefined && e.project !== undefined ? { tenant: e.tenant, project: e.project } : DEFAULT_PROJECT;
}

/** Result of writing one batch. */
export interface PersistOutcome {
  /** Counts summed over the transactions it took. */
  readonly counts: ApplyResult;
  /** Per event (same index): undefined = persisted, else why Postgres refused it for good. */
  readonly refused: readonly (string | undefined)[];
  /** Transactions used: one per project of the batch, more when a project's events had to be split to find poison events. */
  readonly transactions: number;
}

/**
 * Writes one shard's events through the repository, one transaction per
 * project (row-level security: a transaction sees and writes one
 * project's rows), in the order the projects first appear. If Postgres
 * refuses a project's data (an event no validation caught), that
 * project's events are split in halves until the offending events stand
 * alone; they are reported as refused and every other event is persisted.
 * Any other error (Postgres down, timeout, deadlock) rejects: the whole
 * batch is to be retried, the projects already committed included, which
 * is safe because the writes are idempotent (a row only moves forward in
 * version, an event is logged once).
 */
export async function persistBatch(
  shardId: string,
  events: readonly ScoreEvent[],
  repository: BatchRepository,
): Promise<PersistOutcome> {
  const refused: (string | undefined)[] = new Array<string | undefined>(events.length).fill(undefined);
  const counts = { events: 0, inserted: 0, players: 0, upserted: 0 };
  let transactions = 0;
  /** Each project's events, with their indexes in `events` (for `refused`). */
  const groups = new Map<string, { project: ProjectRef; events: ScoreEvent[]; at: number[] }>();
  for (const [i, e] of events.entries()) {
    const project = projectOf(e);
    const key = projectScope(project);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { project, events: [], at: [] }));
    g.events.push(e);
    g.at.push(i);
  }
  const apply = async (g: { project: ProjectRef; events: ScoreEvent[]; at: number[] }, from: number, to: number): Promise<void> => {
    transactions++;
    try {
      const r = await repository.applyBatch(shardId, g.project, g.events.slice(from, to));
      counts.events += r.events;
      counts.inserted += r.inserted;
      counts.players += r.players;
      counts.upserted += r.upserted;
    } catch (e) {
      if (!(e instanceof InvalidBatchError)) throw e;
      if (to - from === 1) {
        refused[g.at[from]!] = e.message;
        return;
      }
      const mid = from + ((to - from) >>> 1);
      await apply(g, from, mid);
      await apply(g, mid, to);
    }
  };
  for (const g of groups.values()) await apply(g, 0, g.events.length);
  return { counts, refused, transactions };
}

/** Per item (same index): undefined = written, else why it is refused for good. */
export type Outcome = readonly (string | undefined)[];

/** Writes a batch and tells each item's outcome. Rejects = retry all. */
export type FlushFn<T> = (items: readonly T[]) => Promise<Outcome>;

export interface BatcherOptions {
  /**
   * Flush as soon as this many items are buffered. A batch holds whole
   * groups: up to this many items, or one group that is larger on its own.
   */
  readonly maxSize: number;
  /** Flush a partial batch this long after its first group arrived (0 = on the next turn of the event loop). */
  readonly maxWaitMs: number;
  /**
   * Most groups the caller can have in hand at once (BullMQ concurrency:
   * jobs). When every one of them is buffered or being written, no further
   * group can arrive before a flush, so a partial batch is written at once
   * instead of waiting for the timer. Default: unlimited.
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

/** A group waiting for its batch (one job's events). */
interface Pending<T> {
  items: readonly T[];
  resolve: (outcome: Outcome) => void;
  reject: (e: Error) => void;
}

/** Gathers groups of items into batches; see the module comment. */
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
  private bufferedItems = 0;
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private inFlightGroups = 0;
  private urgent = false;

  constructor(
    private readonly opts: BatcherOptions,
    private readonly flushFn: FlushFn<T>,
  ) {
    if (!(opts.maxSize >= 1)) throw new RangeError('maxSize must be >= 1');
  }

  /** Items buffered, not yet being written. */
  get buffered(): number {
    return this.bufferedItems;
  }

  /** Batches being written right now. */
  get flushing(): number {
    return this.inFlight.size;
  }

  /**
   * Resolves once the group's items are durably written, with each one's
   * outcome (refused items are reported, not thrown); rejects if their batch
   * failed. An empty group resolves at once.
   */
  add(items: readonly T[]): Promise<Outcome> {
    if (items.length === 0) return Promise.resolve([]);
    return new Promise<Outcome>((resolve, reject) => {
      this.buffer.push({ items, resolve, reject });
      this.bufferedItems += items.length;
      const full = this.bufferedItems >= this.opts.maxSize;
      const starved = this.opts.capacity !== undefined && this.buffer.length + this.inFlightGroups >= this.opts.capacity;
      if (full || starved) this.flush();
      else if (this.timer === undefined) this.schedule();
    });
  }

  /** Starts writing whatever is buffered now, up to `maxInFlight` batches at once; the rest follows as writes finish. */
  flush(): void {
    this.cancelTimer();
    const maxInFlight = this.opts.maxInFlight ?? 2;
    while (this.buffer.length > 0 && this.inFlight.size < maxInFlight) {
      const batch = this.takeBatch();
      this.inFlightGroups += batch.length;
      const p = this.write(batch).finally(() => {
        this.inFlight.delete(p);
        this.inFlightGroups -= batch.length;
        // Full batches held back by the in-flight bound go now; a partial one
        // keeps waiting for its timer (or the capacity / drained signals).
        if (this.bufferedItems >= this.opts.maxSize || this.urgent) this.flush();
        else if (this.buffer.length > 0 && this.timer === undefined) this.schedule();
      });
      this.inFlight.add(p);
    }
  }

  /**
   * From now on, writes every group on the next turn of the event loop instead
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

  /** The first groups of the buffer that fit in `maxSize` items (at least one). */
  private takeBatch(): Pending<T>[] {
    let n = 0;
    let items = 0;
    while (n < this.buffer.length && (n === 0 || items + this.buffer[n]!.items.length <= this.opts.maxSize)) items += this.buffer[n++]!.items.length;
    this.bufferedItems -= items;
    return this.buffer.splice(0, n);
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
    const items = batch.length === 1 ? batch[0]!.items : batch.flatMap((p) => p.items);
    let outcome: Outcome;
    try {
      outcome = await this.flushFn(items);
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      this.stats.failedBatches++;
      this.stats.lastError = err.message;
      this.stats.lastErrorAt = Date.now();
      for (const p of batch) p.reject(err);
      return;
    }
    this.stats.batches++;
    this.stats.items += items.length;
    this.stats.lastBatchSize = items.length;
    this.stats.lastBatchMs = Math.round(performance.now() - started);
    let at = 0;
    for (const p of batch) {
      const mine = outcome.slice(at, at + p.items.length);
      at += p.items.length;
      for (const reason of mine) if (reason !== undefined) this.stats.refusedItems++;
      p.resolve(mine);
    }
  }
}
