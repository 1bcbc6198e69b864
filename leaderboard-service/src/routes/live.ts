/**
 * Live pushes (Server-Sent Events), on the hot path (see http/hot-path.ts).
 * nginx holds the streams (nchan, its push module); a replica checks the
 * request once, readies the channel (live/publisher.ts `open`) and answers
 * with an `X-Accel-Redirect` to nginx's internal subscriber location for
 * that channel, where nginx turns the same request into the stream.
 *
 *   GET  /live                 ?region&limit      the board main's top N
 *   GET  /boards/:board/live   ?region&limit      a board's top N, current period
 *   POST /me/live-ticket       Bearer             a 30 s ticket for /me/live
 *   GET  /me/live              ?board&ticket      the player's own card (Bearer or ticket)
 *
 * Rows are built by the code paths of `/top`, `/boards/:id/top` and
 * `/around` ({@link livePayloads}, what the channel's publisher computes),
 * so they have exactly those answers' shapes: `/live` and the card of
 * `main` keep the original shapes (period null, rows without metadata; see
 * routes/original.ts), every other board's are the board routes'.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ALL_TIME, AppError, GLOBAL, MAIN_BOARD, periodAt, validate, type ShardRouter } from '@lb/common/contracts';
import { LIVE_TICKET_TTL_S, signLiveTicket, type TokenIdentity, type TokenSettings } from '@lb/common/platform';
import type { BoardCatalog } from '../boards/catalog.js';
import type { BoardViews, RankedBoardRow } from '../boards/views.js';
import { projectOf } from '../http/credentials.js';
import { Takeover, type HotHandler, type HotRequest, type Route } from '../http/hot-path.js';
import type { ChannelSpec } from '../live/channels.js';
import type { LiveChannels, Payload, Subscription } from '../live/publisher.js';
import { findBoard } from './board-api.js';
import { queryParam } from './fields.js';
import { originalRow } from './original.js';

export interface LiveRouteDeps {
  live: Pick<LiveChannels, 'open'>;
  catalog: BoardCatalog;
  router: ShardRouter;
  token: TokenSettings;
  /** What the current period is decided by. */
  clock: () => number;
}

/** Most rows a top stream carries (the top-page cache's depth). */
const MAX_LIVE_LIMIT = 100;
/** Rows above and below the player in a card's `around`. */
const CARD_RANGE = 2;
/**
 * nginx's internal locations (nginx/nginx.conf.template): `sub/` is nchan's
 * subscriber, `via/` the same subscriber behind a proxy hop that sends only
 * the headers nchan should see (for clients that do not ask for
 * text/event-stream, or send If-None-Match / If-Modified-Since, which nchan
 * would read as message ids).
 */
const SUBSCRIBE_LOCATION = '/_lb_live/';

/** The value, or undefined when the player is not on that board (yet). */
function unlessNotOnBoard<T>(p: Promise<T>): Promise<T | undefined> {
  return p.catch((e: unknown) => {
    if (e instanceof AppError && e.code === 'user_not_found') return undefined;
    throw e;
  });
}

const topPayload = (body: { rows: unknown[] } & Record<string, unknown>): Payload => ({ body, identity: JSON.stringify(body.rows) });

/** What each channel shows, computed by its publisher (live/publisher.ts) with the code paths of the reads. */
export function livePayloads(deps: { catalog: BoardCatalog; views: BoardViews }): (spec: ChannelSpec) => Promise<Payload> {
  return async (spec) => {
    switch (spec.kind) {
      case 'live': {
        const rows = (await deps.views.top(spec.project, deps.catalog.main(spec.project), ALL_TIME, spec.view, spec.limit, {})).rows.map(originalRow);
        return topPayload({ board: MAIN_BOARD, period: null, region: spec.view, limit: spec.limit, rows });
      }
      case 'top': {
        const board = await findBoard(deps.catalog, spec.project, spec.board);
        const rows = (await deps.views.top(spec.project, board, spec.period, spec.view, spec.limit, {})).rows;
        return topPayload({ board: board.id, period: spec.period, region: spec.view, limit: spec.limit, rows });
      }
      case 'card': {
        const board = await findBoard(deps.catalog, spec.project, spec.board);
        // The card of `main` keeps its original shape: period null, rows as `/around` gives them.
        const original = board.id === MAIN_BOARD;
        const row = original ? originalRow : (x: RankedBoardRow) => x;
        const [reg, glob, around] = await Promise.all([
          spec.region !== GLOBAL ? unlessNotOnBoard(deps.views.rank(spec.project, board, spec.period, spec.region, spec.userId)) : undefined,
          unlessNotOnBoard(deps.views.rank(spec.project, board, spec.period, GLOBAL, spec.userId)),
          unlessNotOnBoard(deps.views.around(spec.project, board, spec.period, GLOBAL, spec.userId, CARD_RANGE)),
        ]);
        return cardPayload(board.id, original ? null : spec.period, spec, reg, glob, (around?.around ?? []).map(row));
      }
    }
  };
}

export function liveRoutes(deps: LiveRouteDeps): Route[] {
  const viewOf = (r: HotRequest) => deps.router.normalizeRegion(queryParam(r.query, 'region'));
  const limitOf = (r: HotRequest) => validate.queryInt(queryParam(r.query, 'limit'), 'limit', 10, 1, MAX_LIVE_LIMIT);
  /** A checked request becomes a stream: a HEAD gets the stream's headers, a GET goes to its channel in nginx. */
  const stream = async (r: HotRequest, spec: ChannelSpec): Promise<Takeover> => {
    if (r.method === 'HEAD') return new Takeover(streamHeaders);
    const sub = await deps.live.open(spec, lastEventIdOf(r));
    return new Takeover((_req, res) => redirect(res, r, sub));
  };

  /** The board main's top N, rows as `/top` gives them (the original shape: period null). */
  const mainTop: HotHandler = async (r) => stream(r, { project: projectOf(r), kind: 'live', view: viewOf(r), limit: limitOf(r) });

  /** A board's top N in its current period, rows as `/boards/:id/top` gives them. */
  const boardTop: HotHandler = async (r) => {
    const board = await findBoard(deps.catalog, projectOf(r), r.params.board ?? '');
    const view = viewOf(r);
    const limit = limitOf(r);
    const period = periodAt(board.resetRule, deps.clock());
    return stream(r, { project: projectOf(r), kind: 'top', board: board.id, period: period.id, view, limit, ...(period.endsAt !== undefined && { endsAt: period.endsAt }) });
  };

  const ticket: HotHandler = async (r) => ({ ticket: signLiveTicket(r.player!, deps.token), expires_in: LIVE_TICKET_TTL_S });

  /** The player's own card on a board: score, ranks, percentiles, the GLOBAL window of 2. */
  const me: HotHandler = async (r) => {
    const player = playerOf(r);
    const asked = queryParam(r.query, 'board') ?? MAIN_BOARD;
    if (typeof asked !== 'string') throw new AppError('invalid_query', 'board: give it once', { field: 'board' });
    const board = await findBoard(deps.catalog, projectOf(r), asked);
    const period = periodAt(board.resetRule, deps.clock());
    return stream(r, {
      project: projectOf(r),
      kind: 'card',
      board: board.id,
      period: period.id,
      userId: player.userId,
      name: player.name,
      region: player.region,
      ...(period.endsAt !== undefined && { endsAt: period.endsAt }),
    });
  };

  return [
    { method: 'GET', path: '/live', auth: 'none', live: true, handler: mainTop },
    { method: 'GET', path: '/boards/:board/live', auth: 'none', live: true, handler: boardTop },
    { method: 'POST', path: '/me/live-ticket', auth: 'token', meter: 'none', handler: ticket },
    { method: 'GET', path: '/me/live', auth: 'none', live: true, handler: me },
  ];
}

/** A stream's headers (nchan sends the same, plus `; charset=utf-8`). */
function streamHeaders(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no' });
  res.end();
}

/**
 * The answer nginx turns into the stream: X-Accel-Redirect to the
 * channel's subscriber location. The client's own Last-Event-ID never
 * reaches nchan: the location reads only `lid`, which is set here to an
 * id nchan holds, or left out.
 */
function redirect(res: ServerResponse, r: HotRequest, sub: Subscription): void {
  const accept = r.headers.accept ?? '';
  const direct = accept.includes('text/event-stream') && r.headers['if-none-match'] === undefined && r.headers['if-modified-since'] === undefined;
  const lid = sub.lastMessageId === undefined ? '' : `?lid=${sub.lastMessageId}`;
  res.writeHead(200, {
    'X-Accel-Redirect': `${SUBSCRIBE_LOCATION}${direct ? 'sub' : 'via'}/${sub.channel}${lid}`,
    'Cache-Control': 'no-cache',
    'Content-Length': '0',
  });
  res.end();
}

/** The client's Last-Event-ID: the header EventSource sends, or `last_event_id` (for clients that cannot set headers). */
function lastEventIdOf(r: HotRequest): string | undefined {
  const h = r.headers['last-event-id'];
  if (typeof h === 'string' && h !== '') return h;
  const q = queryParam(r.query, 'last_event_id');
  return typeof q === 'string' && q !== '' ? q : undefined;
}

/** The player: a Bearer token, or a live ticket (`?ticket=`, for EventSource), both checked by the credentials step; 401 otherwise. */
function playerOf(r: HotRequest): TokenIdentity {
  if (!r.player) throw new AppError('missing_token', 'Authorization: Bearer token or ?ticket= required');
  return r.player;
}

interface RankLike {
  name: string;
  score: number;
  rank: number;
  percentile: number;
}

function cardPayload(
  board: string,
  period: string | null,
  player: { userId: string; name: string; region: string },
  reg: RankLike | undefined,
  glob: RankLike | undefined,
  around: unknown[],
): Payload {
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
