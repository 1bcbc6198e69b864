/**
 * Every board's scores and reads (`main` included), on the hot path (see http/hot-path.ts):
 * input checks and mapping only; the rules live in boards/.
 *
 *   POST /boards/:board/scores           a player's token, or a game server's X-Api-Key
 *   GET  /boards/:board/top              ?region&limit&period&cursor | from_rank&partial
 *   GET  /boards/:board/rank/:userId     ?region&period&partial
 *   GET  /boards/:board/around/:userId   ?region&range&period&partial
 *   POST /boards/:board/ranks            {user_ids, region?, period?}
 *   GET  /boards/:board/periods          ?limit&before
 */
import { AppError, invalidField, periodAt, periodById, projectScope, validate, type Board, type Operator, type ProjectRef, type ShardRouter } from '@lb/common/contracts';
import { type Identity } from '@lb/common/platform';
import type { AccountsRepo } from '../db/accounts-repo.js';
import type { BoardCatalog } from '../boards/catalog.js';
import type { BoardWriter } from '../boards/scores.js';
import { BOARD_TOP, decodeCursor, MAX_FROM_RANK, type BoardViews } from '../boards/views.js';
import { projectOf } from '../http/credentials.js';
import { JsonText, type HotHandler, type HotRequest, type Route } from '../http/hot-path.js';
import { idempotencyKeyOf, queryParam, regionField } from './fields.js';

export interface BoardApiDeps {
  catalog: BoardCatalog;
  writer: BoardWriter;
  views: BoardViews;
  router: ShardRouter;
  accounts: AccountsRepo;
  /** What the current period is decided by. */
  clock: () => number;
}
/** How long a game server's write trusts an account lookup (name and home region), ms. */
const PLAYER_CACHE_MS = 60_000;

/** A live board by id; 404 `board_not_found` otherwise. */
export async function findBoard(catalog: BoardCatalog, project: ProjectRef, id: string): Promise<Board> {
  const b = catalog.get(project, id) ?? (await catalog.lookup(project, id));
  if (!b) throw new AppError('board_not_found', `no board ${id}`, { board: id });
  return b;
}

export function boardApiRoutes(deps: BoardApiDeps): Route[] {
  const players = new Map<string, { identity: Identity; until: number }>();

  const boardOf = (r: HotRequest): Promise<Board> => findBoard(deps.catalog, projectOf(r), r.params.board ?? '');
  /** The period asked for (`period=`), or the current one. */
  const periodOf = (r: HotRequest, b: Board, asked?: unknown): string => {
    const p = asked ?? queryParam(r.query, 'period');
    if (p === undefined || p === '' || p === null) return periodAt(b.resetRule, deps.clock()).id;
    if (typeof p !== 'string' || !periodById(b.resetRule, p)) {
      throw new AppError('period_not_found', `board ${b.id} has no period ${String(p)}`, { board: b.id, period: String(p) });
    }
    return p;
  };
  // A GLOBAL read with a shard down is 503 unless the client accepts a partial answer (every board alike).
  const readOpts = (r: HotRequest) => ({ partial: validate.queryBool(queryParam(r.query, 'partial'), 'partial') });
  const viewOf = (r: HotRequest, asked?: unknown): string =>
    asked === undefined || asked === null ? deps.router.normalizeRegion(queryParam(r.query, 'region')) : regionField(deps.router, asked);

  /** A game server writes for any existing player: their name and home region come from their account. */
  const playerById = async (project: ProjectRef, userId: string): Promise<Identity> => {
    const cacheKey = `${projectScope(project)}|${userId}`;
    const hit = players.get(cacheKey);
    if (hit && hit.until > Date.now()) return hit.identity;
    const row = await deps.accounts.findAnywhere(project, userId);
    if (!row) throw new AppError('user_not_found', `no player ${userId}`, { user_id: userId });
    const identity = { userId: row.user_id, name: row.name, region: row.region };
    if (players.size > 10_000) players.clear();
    players.set(cacheKey, { identity, until: Date.now() + PLAYER_CACHE_MS });
    return identity;
  };

  const submit: HotHandler = async (r) => {
    const board = await boardOf(r);
    const b = validate.bodyObject(r.body);
    validate.onlyFields(b, ['user_id', 'score', 'metadata', 'op']);
    let player: Identity;
    if (r.admin) {
      player = await playerById(projectOf(r), validate.userId(b.user_id));
    } else {
      player = r.player!;
      // The player is always the token's subject; naming anyone else is refused.
      if (b.user_id !== undefined && b.user_id !== player.userId) throw new AppError('forbidden', 'a player can only write their own score');
    }
    if (b.score === undefined) throw invalidField('score', 'is required');
    const value = validate.integer(b.score, 'score');
    let op: Operator | undefined;
    if (b.op !== undefined) {
      if (b.op !== 'set' && b.op !== 'incr' && b.op !== 'best') throw invalidField('op', 'must be set, incr or best');
      op = b.op;
    }
    const key = idempotencyKeyOf(r);
    return deps.writer.submit({
      project: projectOf(r),
      limits: r.caller.limits,
      board,
      player,
      byPlayer: r.admin === undefined,
      value,
      op,
      metadata: b.metadata,
      idempotencyKey: key,
      requestId: r.requestId,
    });
  };

  const top: HotHandler = async (r) => {
    const board = await boardOf(r);
    const view = viewOf(r);
    const period = periodOf(r, board);
    const limit = validate.queryInt(queryParam(r.query, 'limit'), 'limit', 10, 1, 1000);
    const cursorText = queryParam(r.query, 'cursor');
    const fromRankText = queryParam(r.query, 'from_rank');
    if (cursorText !== undefined && fromRankText !== undefined) throw new AppError('invalid_query', 'give cursor or from_rank, not both', { field: 'cursor' });
    if (cursorText !== undefined && typeof cursorText !== 'string') throw new AppError('invalid_query', 'cursor: give it once', { field: 'cursor' });
    if (cursorText === undefined && fromRankText === undefined) return new JsonText(await deps.views.topText(projectOf(r), board, period, view, limit, readOpts(r), BOARD_TOP));
    const at = {
      ...(cursorText !== undefined && { cursor: decodeCursor(cursorText as string) }),
      ...(fromRankText !== undefined && { fromRank: validate.queryInt(fromRankText, 'from_rank', 1, 1, MAX_FROM_RANK) }),
    };
    return deps.views.top(projectOf(r), board, period, view, limit, at, readOpts(r));
  };

  const rank: HotHandler = async (r) => {
    const board = await boardOf(r);
    const period = periodOf(r, board);
    const userId = validate.userId(r.params.userId, 'userId');
    return deps.views.rank(projectOf(r), board, period, viewOf(r), userId, readOpts(r));
  };

  const around: HotHandler = async (r) => {
    const board = await boardOf(r);
    const view = viewOf(r);
    const period = periodOf(r, board);
    const range = validate.queryInt(queryParam(r.query, 'range'), 'range', 10, 1, 100);
    const userId = validate.userId(r.params.userId, 'userId');
    return deps.views.around(projectOf(r), board, period, view, userId, range, readOpts(r));
  };

  const periods: HotHandler = async (r) => {
    const board = await boardOf(r);
    const limit = validate.queryInt(queryParam(r.query, 'limit'), 'limit', 20, 1, 200);
    const before = queryParam(r.query, 'before');
    if (before !== undefined && (typeof before !== 'string' || !periodById(board.resetRule, before))) {
      throw new AppError('invalid_query', 'before: not a period of this board', { field: 'before' });
    }
    return deps.views.periods(projectOf(r), board, limit, before as string | undefined);
  };

  const ranks: HotHandler = async (r) => {
    const board = await boardOf(r);
    const b = validate.bodyObject(r.body);
    validate.onlyFields(b, ['user_ids', 'region', 'period']);
    if (!Array.isArray(b.user_ids) || b.user_ids.length === 0 || b.user_ids.length > 100) throw invalidField('user_ids', 'must be a list of 1-100 user ids');
    const ids = [...new Set(b.user_ids.map((id) => validate.userId(id, 'user_ids')))];
    const period = periodOf(r, board, b.period);
    const view = viewOf(r, b.region ?? 'GLOBAL');
    return deps.views.ranks(projectOf(r), board, period, view, ids);
  };

  return [
    { method: 'POST', path: '/boards/:board/scores', auth: 'token-or-key', handler: submit },
    { method: 'GET', path: '/boards/:board/top', auth: 'none', handler: top },
    { method: 'GET', path: '/boards/:board/rank/:userId', auth: 'none', handler: rank },
    { method: 'GET', path: '/boards/:board/around/:userId', auth: 'none', handler: around },
    { method: 'POST', path: '/boards/:board/ranks', auth: 'none', meter: 'read', handler: ranks },
    { method: 'GET', path: '/boards/:board/periods', auth: 'none', handler: periods },
  ];
}
