/**
 * The first {@link TOP_CACHE_DEPTH} rows of each board, kept in memory so a
 * top page costs no Redis round trip (a GLOBAL one costs one per shard).
 *
 * Exact, not merely short-lived: every write that changes the first entries
 * of a shard's board, or the size of a board, publishes the board's name in
 * the same Lua step (write.lua), and every replica drops its copy when the
 * message arrives. Redis may write a command's reply before the pub/sub
 * messages it caused, so the writer answers such a write only after one more
 * round trip to the shard (writes.ts): Redis has then written the message to
 * every subscriber, and a replica reads it before any request that a client
 * sends after seeing the write acknowledged. Such a client gets a top page
 * with that write in it from any replica.
 *
 * Guards:
 * - Only used while every shard's subscription is live; losing or regaining
 *   one drops everything (messages may have been missed meanwhile).
 * - A page loaded while a change arrived is returned to the requests that
 *   were waiting for it but not kept (a generation counter per board).
 * - Concurrent misses share one load (no stampede after a change).
 * - Entries older than TOP_CACHE_MAX_AGE_MS are reloaded: a bound on what a
 *   change made outside the service (an operator editing Redis) can leave.
 */
import type { RankedRow } from '@lb/common';
import { TOP_CACHE_DEPTH, type ShardStore, type TopChangeWatch } from '../redis/shard-store.js';

export { TOP_CACHE_DEPTH };

export interface TopPage {
  /** Players on the board. */
  total: number;
  /** The board's first TOP_CACHE_DEPTH rows (fewer on a smaller board), ranked. */
  rows: RankedRow[];
  /** Answers already serialized, by limit (filled as they are asked for). */
  texts?: Map<number, string>;
}

interface BoardState {
  /** Bumped by every change of the board (and every reset). */
  gen: number;
  page: TopPage | undefined;
  loadedAt: number;
  loading: { gen: number; promise: Promise<TopPage> } | undefined;
}

export class TopCache {
  private readonly boards = new Map<string, BoardState>();
  private readonly watches: TopChangeWatch[] = [];

  /**
   * @param maxAgeMs TOP_CACHE_MAX_AGE_MS; 0 turns the cache off (no subscriptions)
   * @param load reads a board's first TOP_CACHE_DEPTH rows from the shards
   */
  constructor(
    stores: readonly ShardStore[],
    private readonly maxAgeMs: number,
    private readonly load: (board: string) => Promise<TopPage>,
  ) {
    if (maxAgeMs <= 0) return;
    for (const s of stores) this.watches.push(s.watchTopChanges((board) => this.invalidate(board), () => this.reset()));
  }

  /** For /health: off (TOP_CACHE_MAX_AGE_MS=0), live, or unsubscribed (pages read from the shards until every subscription is back). */
  state(): 'off' | 'live' | 'unsubscribed' {
    return this.watches.length === 0 ? 'off' : this.live() ? 'live' : 'unsubscribed';
  }

  /** In use: on, and every shard's subscription live. */
  live(): boolean {
    return this.watches.length > 0 && this.watches.every((w) => w.live());
  }

  /** The board's cached first rows, loading them on a miss; undefined when the cache cannot be used. */
  async get(board: string): Promise<TopPage | undefined> {
    if (!this.live()) return undefined;
    let st = this.boards.get(board);
    if (st === undefined) {
      st = { gen: 0, page: undefined, loadedAt: 0, loading: undefined };
      this.boards.set(board, st);
    }
    if (st.page !== undefined && performance.now() - st.loadedAt < this.maxAgeMs) return st.page;
    if (st.loading === undefined || st.loading.gen !== st.gen) {
      const gen = st.gen;
      const startedAt = performance.now();
      const state = st;
      const promise = this.load(board).then((page) => {
        if (state.gen === gen && this.live()) {
          state.page = page;
          state.loadedAt = startedAt;
        }
        return page;
      });
      const loading = { gen, promise };
      st.loading = loading;
      // Cleared when settled, unless a newer load replaced it meanwhile.
      promise.then(
        () => state.loading === loading && (state.loading = undefined),
        () => state.loading === loading && (state.loading = undefined),
      );
    }
    return st.loading.promise;
  }

  /** A write changed the board's first entries: forget them. */
  invalidate(board: string): void {
    const st = this.boards.get(board);
    if (st === undefined) return;
    st.gen++;
    st.page = undefined;
  }

  /** Messages may have been missed: forget everything. */
  reset(): void {
    for (const board of this.boards.keys()) this.invalidate(board);
  }

  async close(): Promise<void> {
    await Promise.all(this.watches.map((w) => w.close()));
  }
}
