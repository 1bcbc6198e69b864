/**
 * Board reads: top, rank and around-me, on a regional board (one shard) or
 * the GLOBAL board (gathered from every shard in parallel).
 *
 * GLOBAL answers are exactly those of one combined board: each shard holds
 * its partition in board order, the partitions are merged, and ranks come
 * from exact counts summed over the shards. Round trips per shard:
 * top = 1; rank and around = 1 on a regional board, 2 on GLOBAL (find the
 * player's score, then place that score on the other shards).
 */
import {
  AppError,
  GLOBAL,
  mergeSorted,
  mergeSortedTail,
  percentile,
  rankPrefix,
  rankWindow,
  type NamedEntry,
  type RankedRow,
  type ShardRouter,
} from '@lb/common';
import type { LocateResult, ShardStore, ShardStores } from '../redis/shard-store.js';
import { TOP_CACHE_DEPTH, TopCache, type TopPage } from './top-cache.js';

export interface TopAnswer {
  region: string;
  total: number;
  rows: RankedRow[];
}

export interface RankAnswer {
  found: true;
  user_id: string;
  name: string;
  region: string;
  board: string;
  score: number;
  rank: number;
  total: number;
  percentile: number;
}

export interface AroundAnswer {
  region: string;
  self: RankedRow;
  around: RankedRow[];
}

interface Placed {
  /** The home shard's answer (the player was found there). */
  home: LocateResult;
  /** Every shard's answer for the player's key, home included. */
  all: LocateResult[];
}

export class BoardReader {
  private readonly topCache: TopCache;

  /** @param topCacheMaxAgeMs TOP_CACHE_MAX_AGE_MS (0 = every top page read from the shards) */
  constructor(
    private readonly router: ShardRouter,
    private readonly stores: ShardStores,
    topCacheMaxAgeMs = 0,
  ) {
    this.topCache = new TopCache(stores.all(), topCacheMaxAgeMs, (board) => this.loadTop(board, TOP_CACHE_DEPTH));
  }

  /** Top pages are being served from the cache (on, and subscribed to every shard). */
  topCacheLive(): boolean {
    return this.topCache.live();
  }

  /** See {@link TopCache.state}. */
  topCacheState(): 'off' | 'live' | 'unsubscribed' {
    return this.topCache.state();
  }

  /** Stops the top-page cache's subscriptions. */
  async close(): Promise<void> {
    await this.topCache.close();
  }

  private storesFor(board: string): ShardStore[] {
    return this.router.shardsForBoard(board).map((s) => this.stores.get(s.id));
  }

  /** The first `limit` players of a board. */
  async top(board: string, limit: number): Promise<TopAnswer> {
    if (limit <= TOP_CACHE_DEPTH) {
      const page = await this.topCache.get(board);
      if (page !== undefined) return { region: board, total: page.total, rows: page.rows.slice(0, limit) };
    }
    const page = await this.loadTop(board, limit);
    return { region: board, total: page.total, rows: page.rows };
  }

  /**
   * {@link top} as JSON text. A cached page keeps each answer it has given
   * serialized, so the hot path of the most common read is a lookup.
   */
  async topJson(board: string, limit: number): Promise<string> {
    if (limit <= TOP_CACHE_DEPTH) {
      const page = await this.topCache.get(board);
      if (page !== undefined) {
        const texts = (page.texts ??= new Map());
        let text = texts.get(limit);
        if (text === undefined) {
          text = JSON.stringify({ region: board, total: page.total, rows: page.rows.slice(0, limit) } satisfies TopAnswer);
          texts.set(limit, text);
        }
        return text;
      }
    }
    return JSON.stringify(await this.top(board, limit));
  }

  /** The first `limit` players of a board, from the shards. */
  private async loadTop(board: string, limit: number): Promise<TopPage> {
    const parts = await Promise.all(this.storesFor(board).map((s) => s.top(board, limit)));
    const merged = mergeSorted(
      parts.map((p) => p.rows),
      limit,
    );
    return { total: sum(parts.map((p) => p.total)), rows: rankPrefix(merged) };
  }

  /** A player's rank, score and percentile on a board. */
  async rank(board: string, userId: string): Promise<RankAnswer> {
    const { home, all } = await this.place(board, userId, 0);
    const total = sum(all.map((p) => p.total));
    const lower = sum(all.map((p) => p.lower));
    return {
      found: true,
      user_id: userId,
      name: home.name,
      region: home.region,
      board,
      score: home.score,
      rank: 1 + sum(all.map((p) => p.higher)),
      total,
      percentile: percentile(lower, total),
    };
  }

  /** Up to `range` players directly above and below a player, in board order. */
  async around(board: string, userId: string, range: number): Promise<AroundAnswer> {
    const { home, all } = await this.place(board, userId, range);
    const self: NamedEntry = { user_id: userId, name: home.name, score: home.score };
    const selfRank = 1 + sum(all.map((p) => p.higher));
    const position = sum(all.map((p) => p.position));

    const above = mergeSortedTail(
      all.map((p) => p.above),
      range,
    );
    let aboveRanked: RankedRow[] = [];
    if (above.length > 0) {
      const top = above[0]!.score;
      // Players with a strictly higher score than the window's first row, per
      // shard. A shard whose own first row above has that same score counted
      // them itself; any other shard holds every one of its players between
      // its first row and the key in its window (otherwise the window would
      // be longer than `range`), so they can be counted from its rows.
      const higherThanTop = sum(
        all.map((p) => {
          if (p.above.length === 0) return p.position;
          if (p.above[0]!.score === top) return p.firstAboveHigher;
          return p.position - p.above.filter((r) => r.score <= top).length;
        }),
      );
      aboveRanked = rankWindow(above, position - above.length, higherThanTop);
    }
    const below = mergeSorted(
      all.map((p) => p.below),
      range,
    );
    const selfAndBelow = rankWindow([self, ...below], position, selfRank - 1);
    return { region: board, self: selfAndBelow[0]!, around: [...aboveRanked, ...selfAndBelow.slice(1)] };
  }

  /**
   * Finds a player on a board and places the player's key on every shard of
   * the board. Round 1 asks every shard to look the player up (the home shard
   * answers in full); round 2 places the found score on the other shards.
   */
  private async place(board: string, userId: string, range: number): Promise<Placed> {
    const stores = this.storesFor(board);
    const first = await Promise.all(stores.map((s) => s.locate(board, userId, undefined, range)));
    const homeIdx = first.findIndex((r) => r.found);
    if (homeIdx < 0) {
      throw new AppError('user_not_found', `player ${userId} is not on the ${board} board`, {
        found: false,
        user_id: userId,
        board,
      });
    }
    const home = first[homeIdx]!;
    const all = await Promise.all(
      stores.map((s, i) => (i === homeIdx ? home : s.locate(board, userId, home.score, range))),
    );
    return { home, all };
  }

  /** The global rank of a score: 1 + players with a strictly higher score on every shard. */
  async globalRankOf(score: number, homeShardId: string, higherOnHome: number): Promise<number> {
    const others = this.stores.all().filter((s) => s.shard.id !== homeShardId);
    const counts = await Promise.all(others.map((s) => s.countHigher(GLOBAL, score)));
    return 1 + higherOnHome + sum(counts);
  }
}

function sum(xs: readonly number[]): number {
  let t = 0;
  for (const x of xs) t += x;
  return t;
}
