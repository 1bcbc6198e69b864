/**
 * The first {@link TOP_CACHE_DEPTH} rows of each board, kept in memory so a
 * top page costs no Redis round trip (a GLOBAL one costs one per shard).
 *
 * Exact, not merely short-lived: every write that changes the first entries
 * of a shard's board, or the size of a board, publishes the view's name in
 * the same Lua step (write.lua), and every replica drops its copy when the
 * message arrives. Redis may write a command's reply before the pub/sub
 * messages it caused, so the writer answers such a write only after one more
 * round trip to the shard (boards/scores.ts): Redis has then written the message to
 * every subscriber, and a replica reads it before any request that a client
 * sends after seeing the write acknowledged. Such a client gets a top page
 * with that write in it from any replica.
 *
 * Guards:
 * - A board's copy is only used while the subscription of every shard it
 *   spans is live; losing or regaining one drops the copies of the boards on
 *   that shard (messages may have been missed meanwhile). A regional board
 *   keeps its cache while another shard is down; GLOBAL spans them all.
 * - A page loaded while a change arrived is returned to the requests that
 *   were waiting for it but not kept (a generation counter per board).
 * - Concurrent misses share one load (no stampede after a change).
 * - Entries older than TOP_CACHE_MAX_AGE_MS are reloaded: a bound on what a
 *   change made outside the service (an operator editing Redis) can leave.
 *   Entries nobody asked for within that age are swept away (boards
 *   have a key per period and view, so the keys keep coming).
 * - A board may keep pages of several depths (`variant`): a cold board's
 *   top 10 need not load 100 rows from every shard. A change drops them all.
 */
import { TOP_CACHE_DEPTH, type ShardStore, type TopChangeWatch } from '../redis/shard-store.js';

export { TOP_CACHE_DEPTH };

interface Slot {
  /** The cached page (the caller's type). */
  page: unknown;
  loadedAt: number;
  loading: { gen: number; promise: Promise<unknown> } | undefined;
}

interface BoardState {
  /** Bumped by every change of the board (and every reset). */
  gen: number;
  /** The board's pages, by variant (a depth, or '' for the only one). */
  slots: Map<string | number, Slot>;
  /** Last time a request asked for the board (for the sweep). */
  usedAt: number;
}

/**
 * The top-page cache as the reader uses it: {@link TopCache}, or
 * {@link NoTopCache} when TOP_CACHE_MAX_AGE_MS is 0.
 */
export interface TopPages {
  /**
   * The first rows of a view (`<tenant>/<project>/<board>/<period>/<view>`), loaded with `load` on a miss; undefined when the
   * cache cannot be used now. `variant` keeps pages of different depths apart.
   */
  get<P>(board: string, load: () => Promise<P>, variant?: string | number): Promise<P | undefined>;
  /** In use for every board (on, and subscribed to every shard). */
  live(): boolean;
  /** For /health: off, live, or unsubscribed (a shard's boards are read from it until its subscription is back). */
  state(): 'off' | 'live' | 'unsubscribed';
  /** Boards (keys) the cache holds state for. */
  size(): number;
  /**
   * Follows the changes the cache learns of, on the cache's own
   * subscriptions (live pushes use it: no second subscription). Returns the
   * function that stops it.
   */
  watch(listener: TopChangeListener): () => void;
  /** Changes of `board` arrive (its shards' subscriptions are live); when false, a watcher must poll. */
  liveFor(board: string): boolean;
  close(): Promise<void>;
}

/**
 * A watcher of board changes ({@link TopPages.watch}). `change` runs after
 * the cache dropped its copy of the board, so a read made from it loads the
 * new rows; `reset` when a shard's messages may have been missed.
 */
export interface TopChangeListener {
  change(board: string): void;
  reset(shardId: string): void;
}

/** No cache: every top page is read from the shards. */
export class NoTopCache implements TopPages {
  async get<P>(): Promise<P | undefined> {
    return undefined;
  }
  live(): boolean {
    return false;
  }
  state(): 'off' {
    return 'off';
  }
  size(): number {
    return 0;
  }
  watch(): () => void {
    return () => {};
  }
  liveFor(): boolean {
    return false;
  }
  async close(): Promise<void> {}
}

/** The cache's counters: reads served from memory, reads that loaded (or waited for a load), pages dropped by a change. */
export interface TopCacheCounters {
  readonly hits: { inc(): void };
  readonly misses: { inc(): void };
  readonly invalidations: { inc(): void };
}

export class TopCache implements TopPages {
  private readonly boards = new Map<string, BoardState>();
  /** Each shard's subscription, by shard id. */
  private readonly watches = new Map<string, TopChangeWatch>();
  /** Watchers of changes ({@link watch}), told after the cache dropped the board. */
  private readonly listeners = new Set<TopChangeListener>();

  /**
   * @param maxAgeMs TOP_CACHE_MAX_AGE_MS (> 0): the longest a copy is used at all
   * @param shardsOf the ids of the shards a board spans
   */
  constructor(
    stores: readonly ShardStore[],
    private readonly maxAgeMs: number,
    private readonly shardsOf: (board: string) => readonly string[],
    /** `lb_top_cache_{hits,misses,invalidations}_total` (undefined: metrics off). */
    private readonly counters?: TopCacheCounters,
  ) {
    if (maxAgeMs <= 0) throw new Error('TopCache needs a positive max age; use NoTopCache to turn it off');
    for (const s of stores) {
      const id = s.shard.id;
      this.watches.set(
        id,
        s.watchTopChanges(
          (board) => {
            this.invalidate(board);
            for (const l of this.listeners) l.change(board);
          },
          () => {
            this.resetShard(id);
            for (const l of this.listeners) l.reset(id);
          },
        ),
      );
    }
  }

  /** For /health: off (TOP_CACHE_MAX_AGE_MS=0), live, or unsubscribed (a shard's boards are read from it until its subscription is back). */
  state(): 'off' | 'live' | 'unsubscribed' {
    return this.watches.size === 0 ? 'off' : this.live() ? 'live' : 'unsubscribed';
  }

  /** In use for every board: on, and every shard's subscription live. */
  live(): boolean {
    return this.watches.size > 0 && [...this.watches.values()].every((w) => w.live());
  }

  watch(listener: TopChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** In use for `board`: on, and the subscription of every shard it spans live. */
  liveFor(board: string): boolean {
    if (this.watches.size === 0) return false;
    for (const id of this.shardIds(board)) if (!this.watches.get(id)?.live()) return false;
    return true;
  }

  private readonly spans = new Map<string, readonly string[]>();
  /** {@link shardsOf}, remembered (asked on every top read). */
  private shardIds(board: string): readonly string[] {
    let ids = this.spans.get(board);
    if (ids === undefined) {
      ids = this.shardsOf(board);
      this.spans.set(board, ids);
    }
    return ids;
  }

  private sweptAt = performance.now();

  /** The board's cached first rows, loading them with `load` on a miss; undefined when the cache cannot be used. */
  async get<P>(board: string, load: () => Promise<P>, variant: string | number = ''): Promise<P | undefined> {
    if (!this.liveFor(board)) return undefined;
    const now = performance.now();
    if (now - this.sweptAt > Math.max(this.maxAgeMs, 1000)) this.sweep(now);
    let st = this.boards.get(board);
    if (st === undefined) {
      st = { gen: 0, slots: new Map(), usedAt: now };
      this.boards.set(board, st);
    }
    st.usedAt = now;
    let slot = st.slots.get(variant);
    if (slot === undefined) {
      slot = { page: undefined, loadedAt: 0, loading: undefined };
      st.slots.set(variant, slot);
    }
    if (slot.page !== undefined && now - slot.loadedAt < this.maxAgeMs) {
      this.counters?.hits.inc();
      return slot.page as P;
    }
    this.counters?.misses.inc();
    if (slot.loading === undefined || slot.loading.gen !== st.gen) {
      const gen = st.gen;
      const state = st;
      const into = slot;
      const promise = load().then((page) => {
        if (state.gen === gen && this.liveFor(board)) {
          into.page = page;
          into.loadedAt = now;
        }
        return page;
      });
      const loading = { gen, promise };
      into.loading = loading;
      // Cleared when settled, unless a newer load replaced it meanwhile.
      promise.then(
        () => into.loading === loading && (into.loading = undefined),
        () => into.loading === loading && (into.loading = undefined),
      );
    }
    return slot.loading!.promise as Promise<P>;
  }

  /** Forgets the boards nobody asked for within the max age (their pages would be reloaded anyway). */
  private sweep(now: number): void {
    this.sweptAt = now;
    for (const [board, st] of this.boards) {
      if (now - st.usedAt < this.maxAgeMs) continue;
      if ([...st.slots.values()].some((s) => s.loading !== undefined)) continue;
      this.boards.delete(board);
      this.spans.delete(board);
    }
  }

  size(): number {
    return this.boards.size;
  }

  /** A write changed the board's first entries: forget them. */
  invalidate(board: string): void {
    const st = this.boards.get(board);
    if (st === undefined) return;
    this.counters?.invalidations.inc();
    st.gen++;
    for (const slot of st.slots.values()) slot.page = undefined;
  }

  /** Messages from a shard may have been missed: forget the boards it is part of. */
  private resetShard(shardId: string): void {
    for (const board of this.boards.keys()) if (this.shardIds(board).includes(shardId)) this.invalidate(board);
  }

  async close(): Promise<void> {
    await Promise.all([...this.watches.values()].map((w) => w.close()));
  }
}
