/**
 * Live pushes (Server-Sent Events), on the hot path (see http/hot-path.ts):
 * input checks, then the stream is handed to the LiveHub (live/hub.ts).
 *
 *   GET  /live                 ?region&limit      the board main's top N
 *   GET  /boards/:board/live   ?region&limit      a board's top N, current period
 *   POST /me/live-ticket       Bearer             a 30 s ticket for /me/live
 *   GET  /me/live              ?board&ticket      the player's own card (Bearer or ticket)
 *
 * Rows are built by the code paths of `/top`, `/boards/:id/top` and
 * `/around`, so they have exactly those answers' shapes: `/live` and the
 * card of `main` keep the original shapes (period null, rows without
 * metadata; see routes/original.ts), every other board's are the board
 * routes'. `main` is read like any board.
 */
import {
  ALL_TIME,
  AppError,
  GLOBAL,
  MAIN_BOARD,
  periodAt,
  validate,
  type ShardRouter,
} from '@lb/common/contracts';
import {
  LIVE_TICKET_TTL_S,
  signLiveTicket,
  verifyBearer,
  verifyLiveTicket,
  type Identity,
  type TokenSettings,
} from '@lb/common/platform';
import type { BoardCatalog } from '../boards/catalog.js';
import type { BoardViews, RankedBoardRow } from '../boards/views.js';
import { Takeover, type HotHandler, type HotRequest, type Route } from '../http/hot-path.js';
import type { LiveHub, Payload, TopicSpec } from '../live/hub.js';
import { findBoard } from './board-api.js';
import { queryParam } from './fields.js';
import { originalRow } from './original.js';

export interface LiveRouteDeps {
  hub: LiveHub;
  catalog: BoardCatalog;
  views: BoardViews;
  router: ShardRouter;
  token: TokenSettings;
  /** What the current period is decided by. */
  clock: () => number;
}

/** Most rows a top stream carries (the top-page cache's depth). */
const MAX_LIVE_LIMIT = 100;
/** Rows above and below the player in a card's `around`. */
const CARD_RANGE = 2;

/** The value, or undefined when the player is not on that board (yet). */
function unlessNotOnBoard<T>(p: Promise<T>): Promise<T | undefined> {
  return p.catch((e: unknown) => {
    if (e instanceof AppError && e.code === 'user_not_found') return undefined;
    throw e;
  });
}

const topPayload = (body: { rows: unknown[] } & Record<string, unknown>): Payload => ({ body, identity: JSON.stringify(body.rows) });

export function liveRoutes(deps: LiveRouteDeps): Route[] {
  const stream = (spec: TopicSpec) => new Takeover((req, res) => deps.hub.open(req, res, spec));
  const viewOf = (r: HotRequest) => deps.router.normalizeRegion(queryParam(r.query, 'region'));
  const limitOf = (r: HotRequest) => validate.queryInt(queryParam(r.query, 'limit'), 'limit', 10, 1, MAX_LIVE_LIMIT);

  /** The board main's top N, rows as `/top` gives them (the original shape: period null). */
  const mainTop: HotHandler = async (r) => {
    const view = viewOf(r);
    const limit = limitOf(r);
    const main = deps.catalog.main();
    return stream({
      key: `top|main|-|${view}|${limit}`,
      kind: 'top',
      event: 'top',
      period: null,
      channels: [`${MAIN_BOARD}/${ALL_TIME}/${view}`],
      poll: false,
      compute: async () => topPayload({ board: MAIN_BOARD, period: null, region: view, limit, rows: (await deps.views.top(main, ALL_TIME, view, limit, {})).rows.map(originalRow) }),
    });
  };

  /** A board's top N in its current period, rows as `/boards/:id/top` gives them. */
  const boardTop: HotHandler = async (r) => {
    const board = await findBoard(deps.catalog, r.params.board ?? '');
    const view = viewOf(r);
    const limit = limitOf(r);
    const period = periodAt(board.resetRule, deps.clock());
    return stream({
      key: `top|${board.id}|${period.id}|${view}|${limit}`,
      kind: 'top',
      event: 'top',
      period: period.id,
      channels: [`${board.id}/${period.id}/${view}`],
      poll: false,
      ...(period.endsAt !== undefined && { endsAt: period.endsAt }),
      compute: async () => topPayload({ board: board.id, period: period.id, region: view, limit, rows: (await deps.views.top(board, period.id, view, limit, {})).rows }),
    });
  };

  const ticket: HotHandler = async (r) => ({ ticket: signLiveTicket(r.player!, deps.token), expires_in: LIVE_TICKET_TTL_S });

  /** The player's own card on a board: score, ranks, percentiles, the GLOBAL window of 2. */
  const me: HotHandler = async (r) => {
    const player = playerOf(r, deps.token);
    const asked = queryParam(r.query, 'board') ?? MAIN_BOARD;
    if (typeof asked !== 'string') throw new AppError('invalid_query', 'board: give it once', { field: 'board' });
    const board = await findBoard(deps.catalog, asked);
    const region = player.region;
    const hasRegion = region !== GLOBAL;
    const period = periodAt(board.resetRule, deps.clock());
    // The card of `main` keeps its original shape: period null, rows as `/around` gives them.
    const original = board.id === MAIN_BOARD;
    const row = original ? originalRow : (x: RankedBoardRow) => x;
    const card = async (): Promise<Payload> => {
      const [reg, glob, around] = await Promise.all([
        hasRegion ? unlessNotOnBoard(deps.views.rank(board, period.id, region, player.userId)) : undefined,
        unlessNotOnBoard(deps.views.rank(board, period.id, GLOBAL, player.userId)),
        unlessNotOnBoard(deps.views.around(board, period.id, GLOBAL, player.userId, CARD_RANGE)),
      ]);
      return cardPayload(board.id, original ? null : period.id, player, reg, glob, (around?.around ?? []).map(row));
    };
    const channels = [`${board.id}/${period.id}/${GLOBAL}`, ...(hasRegion ? [`${board.id}/${period.id}/${region}`] : [])];
    return stream({
      key: `me|${board.id}|${period.id}|${player.userId}`,
      kind: 'me',
      event: 'card',
      period: original ? null : period.id,
      channels,
      poll: true,
      ...(period.endsAt !== undefined && { endsAt: period.endsAt }),
      compute: card,
    });
  };

  return [
    { method: 'GET', path: '/live', auth: 'none', handler: mainTop },
    { method: 'GET', path: '/boards/:board/live', auth: 'none', handler: boardTop },
    { method: 'POST', path: '/me/live-ticket', auth: 'token', handler: ticket },
    { method: 'GET', path: '/me/live', auth: 'none', handler: me },
  ];
}

/** The player: a Bearer token, or a live ticket (`?ticket=`, for EventSource); 401 otherwise. */
function playerOf(r: HotRequest, token: TokenSettings): Identity {
  if (r.headers.authorization !== undefined) return verifyBearer(r.headers.authorization, token);
  const t = queryParam(r.query, 'ticket');
  if (t === undefined || t === '') throw new AppError('missing_token', 'Authorization: Bearer token or ?ticket= required');
  if (typeof t !== 'string') throw new AppError('invalid_token', 'ticket: give it once');
  return verifyLiveTicket(t, token);
}

interface RankLike {
  name: string;
  score: number;
  rank: number;
  percentile: number;
}

function cardPayload(board: string, period: string | null, player: Identity, reg: RankLike | undefined, glob: RankLike | undefined, around: unknown[]): Payload {
  const body = {
    board,
    period,
    user_id: player.userId,
    name: glob?.name ?? player.name,
    region: player.region,
    score: glob?.score ?? null,
    rank: { region: reg?.rank ?? null, global: glob?.rank ?? null },
    percentile: { region: reg?.percentile ?? null, global: glob?.percentile ?? null },
    around,
  };
  return { body, identity: JSON.stringify(body) };
}

