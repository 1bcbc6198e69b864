/**
 * Board reads: top, rank and around-me, on a regional board (one shard) or
 * the GLOBAL board (gathered from every shard in parallel).
 *
 * GLOBAL answers are exactly those of one combined board: each shard holds
 * its partition in board order, the partitions are merged, and ranks come
 * from exact counts summed over the shards. Round trips per shard:
 * top = 1; rank and around = 1 on a regional board, 2 on GLOBAL (find the
 * player's score, then place that score on the other shards).
 *
 * A GLOBAL read needs every shard. When one does not answer, the read fails
 * with that shard's StoreUnavailable (503), unless the caller accepts a
 * partial answer (`partial`): then it is computed over the shards that did
 * answer and says which are missing. A rank or window from a partial answer
 * counts only the players of the shards that answered. A player who is not
 * found on any shard that answered may live on a missing one, so that is
 * still a 503, never a 404.
 */
import {
  AppError,
  GLOBAL,
  StoreUnavailable,
  mergeSorted,
  mergeSortedTail,
  percentile,
  rankPrefix,
  rankWindow,
  type NamedEntry,
  type RankedRow,
  type ShardRouter,
} from '@lb/common/contracts';
import type { LocateResult, ShardStore, ShardStores } from '../redis/shard-store.js';
import { gather as gatherFrom, withMissing, type PartialFields, type ReadOptions } from './gather.js';
import { TOP_CACHE_DEPTH, type TopPage, type TopPages } from './top-cache.js';

export type { PartialFields, ReadOptions } from './gather.js';

const gather = <T>(stores: ShardStore[], call: (s: ShardStore) => Promise<T>, partial: boolean) => gatherFrom(stores, (s) => s.shard.id, call, partial);

export interface TopAnswer extends PartialFields {
  region: string;
  total: number;
  rows: RankedRow[];
}

export interface RankAnswer extends PartialFields {
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

export interface AroundAnswer extends PartialFields {
  region: string;
  self: RankedRow;
  around: RankedRow[];
}

interface Placed {
  /** The home shard's answer (the player was found there). */
  home: LocateResult;
  /** Every shard's answer for the player's key, home included (those that answered, for a partial read). */
  all: LocateResult[];
  /** Shards that did not answer (partial reads only). */
  missing: string[];
}

/** The global rank a write answers with: null when a shard could not be counted. */
export interface GlobalRank {
  rank: number | null;
  missing: string[];
}

export class BoardReader {
  /**
   * @param topCache the top-page cache (NoTopCache when TOP_CACHE_MAX_AGE_MS is 0)
   */
  constructor(
    private readonly router: ShardRouter,
    private readonly stores: ShardStores,
    private readonly topCache: TopPages,
  ) {}

  /** Top pages are being served from the cache (on, and subscribed to every shard). */
  topCacheLive(): boolean {
    return this.topCache.live();
  }

  /** See {@link TopPages.state}. */
  topCacheState(): 'off' | 'live' | 'unsubscribed' {
    return this.topCache.state();
  }

  private storesFor(board: string): ShardStore[] {
    return this.router.shardsForBoard(board).map((s) => this.stores.get(s.id));
  }

  /** The first `limit` players of a board. */
  async top(board: string, limit: number, opts: ReadOptions = {}): Promise<TopAnswer> {
    const page = await this.cachedTop(board, limit, opts);
    if (page !== undefined) return { region: board, total: page.total, rows: page.rows.slice(0, limit) };
    const loaded = await this.loadTop(board, limit, opts.partial ?? false);
    return withMissing({ region: board, total: loaded.total, rows: loaded.rows }, loaded.missing);
  }

  /**
   * {@link top} as JSON text. A cached page keeps each answer it has given
   * serialized, so the hot path of the most common read is a lookup.
   */
  async topJson(board: string, limit: number, opts: ReadOptions = {}): Promise<string> {
    const page = await this.cachedTop(board, limit, opts);
    if (page !== undefined) {
      const texts = (page.texts ??= new Map());
      let text = texts.get(limit);
      if (text === undefined) {
        text = JSON.stringify({ region: board, total: page.total, rows: page.rows.slice(0, limit) } satisfies TopAnswer);
        texts.set(limit, text);
      }
      return text;
    }
    return JSON.stringify(await this.top(board, limit, opts));
  }

  /**
   * The cached page when it can serve `limit` rows. Only whole pages are
   * cached: when a shard fails while one loads, a partial read goes on
   * without the cache (undefined), any other read fails.
   */
  private async cachedTop(board: string, limit: number, opts: ReadOptions): Promise<TopPage | undefined> {
    if (limit > TOP_CACHE_DEPTH) return undefined;
    try {
      return await this.topCache.get(board, () => this.loadTop(board, TOP_CACHE_DEPTH));
    } catch (e) {
      if (opts.partial && e instanceof StoreUnavailable) return undefined;
      throw e;
    }
  }

  /** The first `limit` players of a board, from the shards (those that answer, when `partial`). */
  private async loadTop(board: string, limit: number, partial = false): Promise<TopPage & { missing: string[] }> {
    const { results: parts, missing } = await gather(this.storesFor(board), (s) => s.top(board, limit), partial);
    const merged = mergeSorted(
      parts.map((p) => p.rows),
      limit,
    );
    return { total: sum(parts.map((p) => p.total)), rows: rankPrefix(merged), missing };
  }

  /** A player's rank, score and percentile on a board. */
  async rank(board: string, userId: string, opts: ReadOptions = {}): Promise<RankAnswer> {
    const { home, all, missing } = await this.place(board, userId, 0, opts.partial ?? false);
    const total = sum(all.map((p) => p.total));
    const lower = sum(all.map((p) => p.lower));
    return withMissing({
      found: true,
      user_id: userId,
      name: home.name,
      region: home.region,
      board,
      score: home.score,
      rank: 1 + sum(all.map((p) => p.higher)),
      total,
      percentile: percentile(lower, total),
    } satisfies RankAnswer, missing);
  }

  /** Up to `range` players directly above and below a player, in board order. */
  async around(board: string, userId: string, range: number, opts: ReadOptions = {}): Promise<AroundAnswer> {
    const { home, all, missing } = await this.place(board, userId, range, opts.partial ?? false);
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
    return withMissing({ region: board, self: selfAndBelow[0]!, around: [...aboveRanked, ...selfAndBelow.slice(1)] }, missing);
  }

  /**
   * Finds a player on a board and places the player's key on every shard of
   * the board. Round 1 asks every shard to look the player up (the home shard
   * answers in full); round 2 places the found score on the other shards.
   */
  private async place(board: string, userId: string, range: number, partial: boolean): Promise<Placed> {
    const first = await gather(this.storesFor(board), (s) => s.locate(board, userId, undefined, range), partial);
    const home = first.results.find((r) => r.found);
    if (home === undefined) {
      // The player may live on a shard that did not answer.
      if (first.missing.length > 0) throw new StoreUnavailable('redis', first.missing[0]!);
      throw new AppError('user_not_found', `player ${userId} is not on the ${board} board`, {
        found: false,
        user_id: userId,
        board,
      });
    }
    const answered = first.stores.filter((_, i) => first.results[i] !== home);
    const rest = await gather(answered, (s) => s.locate(board, userId, home.score, range), partial);
    return { home, all: [home, ...rest.results], missing: [...first.missing, ...rest.missing] };
  }

  /**
   * The global rank of a score: 1 + players with a strictly higher score on
   * every shard. Never fails: a write has already been applied when this is
   * asked, so a shard that cannot be counted makes the rank null instead.
   */
  async globalRankOf(score: number, homeShardId: string, higherOnHome: number): Promise<GlobalRank> {
    const others = this.stores.all().filter((s) => s.shard.id !== homeShardId);
    const counts = await Promise.allSettled(others.map((s) => s.countHigher(GLOBAL, score)));
    const missing = others.filter((_, i) => counts[i]!.status === 'rejected').map((s) => s.shard.id);
    if (missing.length > 0) return { rank: null, missing };
    return { rank: 1 + higherOnHome + sum(counts.map((c) => (c as PromiseFulfilledResult<number>).value)), missing };
  }
}

function sum(xs: readonly number[]): number {
  let t = 0;
  for (const x of xs) t += x;
  return t;
}
