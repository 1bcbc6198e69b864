/**
 * Reads of boards (`main` included): top pages with cursors, a player's
 * rank, around-me and ranks of a list of players (friends), on a regional
 * view (one shard) or the exact GLOBAL view gathered from every shard. Each
 * shard holds its partition of a view in board order; the partitions are
 * merged and ranks come from exact counts summed over the shards, for both
 * orders and both tie policies:
 *
 * - board order is ascending (stored score, member) on every shard
 *   (@lb/common ranking.ts, lua/includes/order.lua), so shards' pages merge
 *   by that key;
 * - `shared` ties: rank = 1 + players with a strictly better score
 *   (competition ranks 1, 2, 2, 4); `earliest` ties: rank = 1 + players
 *   before the entry in board order (ordinal ranks 1, 2, 3, 4).
 *
 * Round trips per shard: top = 1 (none from the top-page cache); rank and
 * around = 1 on a regional view, 2 on GLOBAL (find the player, then place
 * the key on the other shards). A GLOBAL read needs every shard: when one
 * does not answer, the read fails with its StoreUnavailable (503) unless
 * the caller accepts a partial answer (leaderboard/gather.ts).
 */
import { AppError, StoreUnavailable, comparePlaces, mergePlaces, percentile, periodAt, previousPeriod, rankList, rankPlaces, scoreOf, type Board, type ProjectRef, type ShardRouter } from '@lb/common/contracts';
import type { ArchiveRepo, ArchivedRow } from '../db/archive-repo.js';
import { gather, withMissing, type ReadOptions } from '../leaderboard/gather.js';
import type { TopPages } from '../leaderboard/top-cache.js';
import { BoardStore, topChangeName, type BoardKey, type BoardRules } from '../redis/board-store.js';
import type { BoardRow } from '../redis/contract.js';
import { TOP_CACHE_DEPTH, type ShardStores } from '../redis/shard-store.js';

/** The shallow cached page of a view (top pages of up to this many rows). */
const SHALLOW_DEPTH = 10;

export interface RankedBoardRow {
  rank: number;
  user_id: string;
  name: string;
  score: number;
  metadata: unknown;
}

const shardOf = (s: BoardStore): string => s.store.shard.id;

/** A top page as the board routes answer it. */
export interface TopAnswer {
  board: string;
  period: string;
  region: string;
  total: number;
  rows: RankedBoardRow[];
  next_cursor: string | null;
  partial?: true;
  missing_shards?: string[];
}

/**
 * A shape a top page is answered in (the board routes' own, or the
 * original /top's), with a name: pages served from the top-page cache keep
 * each shape's JSON text per limit, so the most common read is a lookup.
 */
export interface TopForm {
  readonly id: string;
  render(a: TopAnswer): unknown;
}

/** The board routes' shape. */
export const BOARD_TOP: TopForm = { id: 'board', render: (a) => a };

interface FirstRows {
  total: number;
  rows: RankedBoardRow[];
  keys: BoardKey[];
  /** Answers already serialized, by form and limit. */
  texts?: Map<string, string>;
}

/** Most rows `from_rank` may skip: it reads that many rows from every shard. */
export const MAX_FROM_RANK = 10_000;

/** Rows of a view ranked by the board's ties (see @lb/common ranking.ts for the maths). */
function rankRows(board: BoardRules, rows: readonly BoardRow[], firstPosition: number, aheadOfFirst: number): RankedBoardRow[] {
  const ranks = rankPlaces(board.tieBreak, rows, firstPosition, aheadOfFirst);
  return rows.map((r, i) => ({ rank: ranks[i]!, user_id: r.user_id, name: r.name, score: scoreOf(board.order, r.stored), metadata: r.metadata === undefined ? null : JSON.parse(r.metadata) }));
}

/** Cursors are the place of the last row returned, opaque to clients. */
export function encodeCursor(k: BoardKey): string {
  return Buffer.from(JSON.stringify([k.stored, k.member])).toString('base64url');
}

export function decodeCursor(text: string): BoardKey {
  try {
    const v = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && /^-?\d{1,16}$/.test(v[0]) && typeof v[1] === 'string' && v[1].length <= 100) {
      return { stored: v[0], member: v[1] };
    }
  } catch {
    /* below */
  }
  throw new AppError('invalid_query', 'cursor: not a cursor this board gave', { field: 'cursor' });
}

export class BoardViews {
  /**
   * @param archive closed periods (read instead of Redis once a period is archived)
   * @param clock what "the current period" is decided by
   */
  constructor(
    private readonly router: ShardRouter,
    private readonly stores: ShardStores,
    private readonly archive: ArchiveRepo,
    private readonly topCache: TopPages,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * The first `depth` rows of a view, from the top-page cache (the write
   * script publishes `<tenant>/<project>/<board>/<period>/<view>` when it changes any of the
   * first TOP_CACHE_DEPTH).
   */
  private firstRows(project: ProjectRef, board: Board, period: string, view: string, depth: number): Promise<FirstRows | undefined> {
    return this.topCache.get<FirstRows>(
      topChangeName(project, board.id, period, view),
      async () => {
        const pages = await Promise.all(this.storesFor(project, view).map((s) => s.page(board, period, view, depth, undefined)));
        const rows = mergePlaces(
          pages.map((p) => p.rows),
          depth,
        );
        return { total: pages.reduce((a, p) => a + p.total, 0), rows: rankRows(board, rows, 0, 0), keys: rows.map((r): BoardKey => ({ stored: r.stored, member: r.member })) };
      },
      depth,
    );
  }

  /** Players on a period of a board, live (every shard's GLOBAL view). */
  private async livePlayers(project: ProjectRef, board: Board, period: string): Promise<number> {
    const totals = await Promise.all(this.storesFor(project, 'GLOBAL').map((s) => s.before(board, period, 'GLOBAL', [])));
    return totals.reduce((a, t) => a + t.total, 0);
  }

  /**
   * The board's periods, newest first: the current one (open), the one
   * before it while it has players and is not archived yet (closing), then
   * the archived ones; `before` (a period id) pages on.
   */
  async periods(project: ProjectRef, board: Board, limit: number, before: string | undefined) {
    const iso = (t: number | undefined) => (t === undefined ? null : new Date(t).toISOString());
    const current = periodAt(board.resetRule, this.clock());
    const out: { id: string; starts_at: string | null; ends_at: string | null; status: 'open' | 'closing' | 'archived'; players: number }[] = [];
    if (before === undefined || current.id < before) {
      out.push({ id: current.id, starts_at: iso(current.startsAt), ends_at: iso(current.endsAt), status: 'open', players: await this.livePlayers(project, board, current.id) });
    }
    const prev = previousPeriod(board.resetRule, current);
    if (prev && out.length < limit && (before === undefined || prev.id < before) && !(await this.archive.isClosed(project, board.id, prev.id))) {
      const players = await this.livePlayers(project, board, prev.id);
      if (players > 0) out.push({ id: prev.id, starts_at: iso(prev.startsAt), ends_at: iso(prev.endsAt), status: 'closing', players });
    }
    if (out.length < limit) {
      for (const c of await this.archive.periods(project, board.id, limit - out.length, before)) out.push({ id: c.period, starts_at: c.starts_at, ends_at: c.ends_at, status: 'archived', players: c.players });
    }
    const last = out[out.length - 1];
    return { board: board.id, periods: out, next_before: out.length === limit && last ? last.id : null };
  }

  /** A period other than the current one that the close has archived: read from Postgres. */
  private async archived(project: ProjectRef, board: Board, period: string): Promise<boolean> {
    if (period === periodAt(board.resetRule, this.clock()).id) return false;
    return this.archive.isClosed(project, board.id, period);
  }

  private storesFor(project: ProjectRef, view: string): BoardStore[] {
    return this.router.shardsForBoard(view).map((s) => new BoardStore(this.stores.get(s.id), project));
  }

  /**
   * A page of a view: from the top, from `fromRank`, or after `cursor`.
   * `next_cursor` continues after the last row (null at the end). With
   * `partial`, a GLOBAL view is read over the shards that answer (see
   * leaderboard/gather.ts).
   */
  async top(project: ProjectRef, board: Board, period: string, view: string, limit: number, at: { cursor?: BoardKey; fromRank?: number }, opts: ReadOptions = {}): Promise<TopAnswer> {
    const partial = opts.partial ?? false;
    if (await this.archived(project, board, period)) return this.archivedTop(project, board, period, view, limit, at);
    const page = at.cursor || at.fromRank !== undefined ? undefined : await this.cachedFirst(project, board, period, view, limit, partial);
    if (page) return this.fromFirst(board, period, view, limit, page);
    return this.loadPage(project, board, period, view, limit, at, partial);
  }

  /** {@link top} from the top (no cursor) as JSON text in a form; a cached page keeps the text. */
  async topText(project: ProjectRef, board: Board, period: string, view: string, limit: number, opts: ReadOptions, form: TopForm): Promise<string> {
    const partial = opts.partial ?? false;
    if (await this.archived(project, board, period)) return JSON.stringify(form.render(await this.archivedTop(project, board, period, view, limit, {})));
    const page = await this.cachedFirst(project, board, period, view, limit, partial);
    if (!page) return JSON.stringify(form.render(await this.loadPage(project, board, period, view, limit, {}, partial)));
    const texts = (page.texts ??= new Map());
    const id = `${form.id}/${limit}`;
    let text = texts.get(id);
    if (text === undefined) {
      text = JSON.stringify(form.render(this.fromFirst(board, period, view, limit, page)));
      texts.set(id, text);
    }
    return text;
  }

  /** A page of a period the close has archived, from Postgres. */
  private async archivedTop(project: ProjectRef, board: Board, period: string, view: string, limit: number, at: { cursor?: BoardKey; fromRank?: number }): Promise<TopAnswer> {
    const [total, rows] = await Promise.all([
      this.archive.total(project, board.id, period, view),
      this.archive.page(project, board.id, period, view, limit, at.cursor ? { after: at.cursor } : { offset: (at.fromRank ?? 1) - 1 }),
    ]);
    const last = rows[rows.length - 1];
    const start = rows[0]?.position ?? total;
    return { board: board.id, period, region: view, total, rows: rows.map(archivedRow), next_cursor: last && rows.length === limit && start + rows.length < total ? encodeCursor(last) : null };
  }

  /**
   * The cached first rows when they can serve a page of `limit` from the
   * top. Most clients ask for a top 10: a view read only that way costs 10
   * rows per shard, not 100. Only whole pages are cached: when a shard
   * fails while one loads, a partial read goes on without the cache
   * (undefined), any other read fails.
   */
  private async cachedFirst(project: ProjectRef, board: Board, period: string, view: string, limit: number, partial: boolean): Promise<FirstRows | undefined> {
    if (limit > TOP_CACHE_DEPTH) return undefined;
    return this.firstRows(project, board, period, view, limit <= SHALLOW_DEPTH ? SHALLOW_DEPTH : TOP_CACHE_DEPTH).catch((e: unknown) => {
      if (partial && e instanceof StoreUnavailable) return undefined;
      throw e;
    });
  }

  private fromFirst(board: Board, period: string, view: string, limit: number, page: FirstRows): TopAnswer {
    const rows = page.rows.slice(0, limit);
    const next = rows.length === limit && limit < page.total ? encodeCursor(page.keys[limit - 1]!) : null;
    return { board: board.id, period, region: view, total: page.total, rows, next_cursor: next };
  }

  /** A page read from the shards (those that answer, when `partial`). */
  private async loadPage(project: ProjectRef, board: Board, period: string, view: string, limit: number, at: { cursor?: BoardKey; fromRank?: number }, partial: boolean): Promise<TopAnswer> {
    const stores = this.storesFor(project, view);
    const after = at.cursor;
    // The rows before a wanted rank come from the top of every shard.
    const skip = at.fromRank !== undefined && at.fromRank > 1 ? at.fromRank - 1 : 0;
    const gathered = await gather(stores, shardOf, (s) => s.page(board, period, view, limit + skip, after), partial);
    const pages = gathered.results;
    const missing = [...gathered.missing];
    const merged = mergePlaces(
      pages.map((p) => p.rows),
      limit + skip,
    );
    const rows = merged.slice(skip);
    const total = pages.reduce((a, p) => a + p.total, 0);
    const start = pages.reduce((a, p) => a + p.start, 0) + skip;
    let aheadOfFirst = start;
    const first = rows[0];
    if (first && board.tieBreak === 'shared') {
      if (skip > 0 || (after && first.stored === after.stored)) {
        // The first row's block of equal scores may begin before the page.
        const counts = await gather(gathered.stores, shardOf, (s) => s.before(board, period, view, [first]), partial);
        missing.push(...counts.missing);
        aheadOfFirst = counts.results.reduce((a, c) => a + c.ahead[0]!, 0);
      }
    }
    const last = rows[rows.length - 1];
    return withMissing(
      {
        board: board.id,
        period,
        region: view,
        total,
        rows: rankRows(board, rows, start, aheadOfFirst),
        next_cursor: last && rows.length === limit && start + rows.length < total ? encodeCursor(last) : null,
      },
      missing,
    );
  }

  /**
   * Finds players on a view: each found one with its place and the counts
   * of its own shard (over the shards that answer, when `partial`).
   */
  private async find(project: ProjectRef, board: Board, period: string, view: string, userIds: readonly string[], partial = false) {
    const g = await gather(this.storesFor(project, view), shardOf, (s) => s.find(board, period, view, userIds), partial);
    return { stores: g.stores, results: g.results, missing: g.missing };
  }

  /** The shard of the player found by {@link find}; a player found nowhere may live on a shard that did not answer (503, not 404). */
  private homeOf(board: Board, period: string, view: string, userId: string, found: { results: { found: unknown[] }[]; missing: string[] }): number {
    const home = found.results.findIndex((r) => r.found.length > 0);
    if (home >= 0) return home;
    if (found.missing.length > 0) throw new StoreUnavailable('redis', found.missing[0]!);
    throw notOnBoard(board, period, view, userId);
  }

  /** A player's rank, score, percentile and metadata on a view. */
  async rank(project: ProjectRef, board: Board, period: string, view: string, userId: string, opts: ReadOptions = {}) {
    return (await this.placed(project, board, period, view, userId, opts)).answer;
  }

  /** {@link rank}, with the player's home region ('' when not known: an archived period, an entry kept before regions were). */
  async placed(project: ProjectRef, board: Board, period: string, view: string, userId: string, opts: ReadOptions = {}) {
    const partial = opts.partial ?? false;
    if (await this.archived(project, board, period)) {
      const [row] = await this.archive.find(project, board.id, period, view, [userId]);
      if (!row) throw notOnBoard(board, period, view, userId);
      const [total, worse] = await Promise.all([this.archive.total(project, board.id, period, view), this.archive.worse(project, board.id, period, view, row.score, board.order)]);
      const answer = { found: true, board: board.id, period, region: view, user_id: userId, name: row.name, score: row.score, rank: row.rank, total, percentile: percentile(worse, total), metadata: row.metadata };
      return { answer, homeRegion: '' };
    }
    const found = await this.find(project, board, period, view, [userId], partial);
    const home = this.homeOf(board, period, view, userId, found);
    const f = found.results[home]!.found[0]!;
    const others = await gather(
      found.stores.filter((_, i) => i !== home),
      shardOf,
      (s) => s.before(board, period, view, [f]),
      partial,
    );
    const ahead = f.ahead + others.results.reduce((a, c) => a + c.ahead[0]!, 0);
    const worse = f.worse + others.results.reduce((a, c) => a + c.worse[0]!, 0);
    const total = found.results.reduce((a, r) => a + r.total, 0);
    const answer = withMissing({
      found: true,
      board: board.id,
      period,
      region: view,
      user_id: userId,
      name: f.name,
      score: scoreOf(board.order, f.stored),
      rank: ahead + 1,
      total,
      percentile: percentile(worse, total),
      metadata: f.metadata === undefined ? null : JSON.parse(f.metadata),
    }, [...found.missing, ...others.missing]);
    return { answer, homeRegion: f.region };
  }

  /** A player's score on a view of their home shard (GLOBAL: every player is on it), or null when not on it. */
  async scoreOf(project: ProjectRef, board: Board, period: string, player: { userId: string; region: string }): Promise<number | null> {
    const home = new BoardStore(this.stores.get(this.router.homeShard(player.userId, player.region).id), project);
    const [f] = (await home.find(board, period, 'GLOBAL', [player.userId])).found;
    return f ? scoreOf(board.order, f.stored) : null;
  }

  /** Up to `range` players just above and below a player on a view, in board order. */
  async around(project: ProjectRef, board: Board, period: string, view: string, userId: string, range: number, opts: ReadOptions = {}) {
    const partial = opts.partial ?? false;
    if (await this.archived(project, board, period)) {
      const [row] = await this.archive.find(project, board.id, period, view, [userId]);
      if (!row) throw notOnBoard(board, period, view, userId);
      const near = await this.archive.range(project, board.id, period, view, row.position - range, row.position + range);
      return { board: board.id, period, region: view, self: archivedRow(row), around: near.filter((r) => r.position !== row.position).map(archivedRow) };
    }
    const found = await this.find(project, board, period, view, [userId], partial);
    const f = found.results[this.homeOf(board, period, view, userId, found)]!.found[0]!;
    const gathered = await gather(found.stores, shardOf, (s) => s.around(board, period, view, f, range), partial);
    const parts = gathered.results;
    const position = parts.reduce((a, p) => a + p.position, 0);
    const selfAhead = parts.reduce((a, p) => a + p.ahead, 0);
    const above = parts
      .flatMap((p) => p.above)
      .sort(comparePlaces)
      .slice(-range);
    const below = mergePlaces(
      parts.map((p) => p.below),
      range,
    );
    let aboveRanked: RankedBoardRow[] = [];
    if (above.length > 0) {
      const top = above[0]!;
      // Players ahead of the window's first row, per shard: a shard whose own
      // first row above is that row's score (or, for earliest ties, that very
      // place) counted them itself; any other shard holds all of its players
      // between its first row and the key in its window, so they can be
      // counted from its rows (see leaderboard/reads.ts).
      const aheadOfTop = parts.reduce((a, p) => {
        if (p.above.length === 0) return a + p.position;
        if (board.tieBreak === 'earliest') return a + p.position - p.above.filter((r) => comparePlaces(r, top) >= 0).length;
        if (p.above[0]!.stored === top.stored) return a + p.firstAboveAhead;
        return a + p.position - p.above.filter((r) => Number(r.stored) >= Number(top.stored)).length;
      }, 0);
      aboveRanked = rankRows(board, above, position - above.length, aheadOfTop);
    }
    const selfRow: BoardRow = { user_id: userId, member: f.member, stored: f.stored, name: f.name, metadata: f.metadata };
    const selfAndBelow = rankRows(board, [selfRow, ...below], position, selfAhead);
    return withMissing({ board: board.id, period, region: view, self: selfAndBelow[0]!, around: [...aboveRanked, ...selfAndBelow.slice(1)] }, [...found.missing, ...gathered.missing]);
  }

  /**
   * Ranks of listed players (friends): each with its rank on the whole view
   * and its `list_rank` among the listed players that are on the board, by
   * the same tie policy; ids not on the board are `missing`.
   */
  async ranks(project: ProjectRef, board: Board, period: string, view: string, userIds: readonly string[]) {
    let rows: { key: BoardKey; user_id: string; name: string; score: number; rank: number; metadata: unknown }[];
    if (await this.archived(project, board, period)) {
      rows = (await this.archive.find(project, board.id, period, view, userIds)).map((r) => ({ key: r, user_id: r.user_id, name: r.name, score: r.score, rank: r.rank, metadata: r.metadata }));
    } else {
      const { stores, results } = await this.find(project, board, period, view, userIds);
      const found = results.flatMap((r, shard) => r.found.map((f) => ({ shard, f })));
      const counts = await Promise.all(stores.map((s) => (found.length === 0 ? undefined : s.before(board, period, view, found.map((x) => x.f)))));
      rows = found
        .map(({ shard, f }, i) => {
          // Its own shard's count came with it; the others counted its key.
          const ahead = f.ahead + counts.reduce((a, c, j) => a + (j === shard || !c ? 0 : c.ahead[i]!), 0);
          return { key: f as BoardKey, user_id: f.user_id, name: f.name, score: scoreOf(board.order, f.stored), rank: ahead + 1, metadata: f.metadata === undefined ? null : JSON.parse(f.metadata) };
        })
        .sort((a, b) => comparePlaces(a.key, b.key));
    }
    // Among the listed players, by the same tie policy as the board.
    const listRanks = rankList(board.tieBreak, rows.map((r) => r.key));
    const listed = rows.map((r, i) => ({ user_id: r.user_id, name: r.name, score: r.score, rank: r.rank, list_rank: listRanks[i]!, metadata: r.metadata }));
    const on = new Set(rows.map((r) => r.user_id));
    return { board: board.id, period, region: view, rows: listed, missing: userIds.filter((id) => !on.has(id)) };
  }
}

function archivedRow(r: ArchivedRow): RankedBoardRow {
  return { rank: r.rank, user_id: r.user_id, name: r.name, score: r.score, metadata: r.metadata };
}

function notOnBoard(board: Board, period: string, view: string, userId: string): AppError {
  return new AppError('user_not_found', `player ${userId} is not on board ${board.id} (${view}, period ${period})`, {
    found: false,
    user_id: userId,
    board: board.id,
    period,
    region: view,
  });
}
