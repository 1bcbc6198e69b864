/**
 * The original implementation's endpoints, a thin alias table onto the
 * board `main`: every one is a submission to or a read of `main` through
 * the board engine, and only adapts shapes (the original field names and
 * answers, see docs/API.md "Legacy fields"). Served on the hot path (see
 * http/hot-path.ts).
 *
 *   POST /score/create | /score/update | /score/add      the token's player
 *   GET  /top (= /score)                                 ?region&limit&partial
 *   GET  /rank/:userId (= /score/rank/:userId)           ?region&partial
 *   GET  /around/:userId (= /score/around/:userId)       ?region&range&partial
 */
import { ALL_TIME, AppError, invalidField, MAIN_BOARD, validate, type ShardRouter } from '@lb/common/contracts';
import { type Identity } from '@lb/common/platform';
import type { BoardCatalog } from '../boards/catalog.js';
import type { BoardSubmission, BoardWriteAnswer, BoardWriter } from '../boards/scores.js';
import type { BoardViews, RankedBoardRow, TopForm } from '../boards/views.js';
import { projectOf } from '../http/credentials.js';
import { JsonText, type HotHandler, type HotRequest, type Route } from '../http/hot-path.js';
import type { ServiceMetrics } from '../metrics.js';
import { idempotencyKeyOf, initialScoreField, queryParam, regionField } from './fields.js';

export interface OriginalRouteDeps {
  catalog: BoardCatalog;
  writer: BoardWriter;
  views: BoardViews;
  router: ShardRouter;
  maxScore: number;
  maxScoreDelta: number;
  /** Refusals by these checks are writes refused too (`lb_writes_total`); the writer counts the rest. */
  metrics?: ServiceMetrics | undefined;
}

/** A row as the original reads give it (no metadata). */
export const originalRow = (r: RankedBoardRow) => ({ rank: r.rank, user_id: r.user_id, name: r.name, score: r.score });

/** Partial-read fields, kept where a board answer has them. */
const partialOf = (a: object) => ('partial' in a && a.partial === true && 'missing_shards' in a ? { partial: true as const, missing_shards: a.missing_shards as string[] } : {});

/** The original /top answer. */
export const ORIGINAL_TOP: TopForm = { id: 'original', render: (a) => ({ region: a.region, total: a.total, rows: a.rows.map(originalRow), ...partialOf(a) }) };

/** The original write answer. */
function originalWrite(w: BoardWriteAnswer) {
  return { ok: true, user_id: w.user_id, region: w.region, score: w.score, version: w.version, rank: w.rank, ...(w.missing_shards && { missing_shards: w.missing_shards }) };
}

/** The original "not on the board" error: the view is named `board`. */
function originalNotFound(view: string) {
  return (e: unknown): never => {
    if (e instanceof AppError && e.code === 'user_not_found') {
      const userId = String(e.details?.user_id ?? '');
      throw new AppError('user_not_found', `player ${userId} is not on the ${view} board`, { found: false, user_id: userId, board: view });
    }
    throw e;
  };
}

export function originalRoutes(deps: OriginalRouteDeps): Route[] {
  const main = (r: HotRequest) => deps.catalog.main(projectOf(r));

  // ------------------------------------------------------------ writes
  type Op = NonNullable<BoardSubmission['legacyOp']>;
  const write =
    (legacyOp: Op, operator: 'insert' | 'set' | 'incr', readValue: (b: Record<string, unknown>, player: Identity) => number): HotHandler =>
    async (r: HotRequest) => {
      const player = r.player!;
      const board = main(r);
      let value: number;
      let key: string | undefined;
      try {
        if (!board.clientWrites) throw new AppError('client_writes_disabled', 'board main takes scores from game servers only', { board: MAIN_BOARD });
        const b = validate.bodyObject(r.body);
        // The player is always the token's subject; naming anyone else is refused.
        if (b.user_id !== undefined && b.user_id !== player.userId) throw new AppError('forbidden', 'a player can only write their own score');
        value = readValue(b, player);
        key = idempotencyKeyOf(r);
      } catch (e) {
        deps.metrics?.refused(player.region, e);
        throw e;
      }
      return originalWrite(await deps.writer.submit({ project: projectOf(r), limits: r.caller.limits, board, player, byPlayer: true, value, op: operator, legacyOp, idempotencyKey: key, requestId: r.requestId }));
    };

  const create = write('create', 'insert', (b, player) => {
    if (b.region !== undefined && b.region !== null) {
      const asked = regionField(deps.router, b.region);
      if (asked !== player.region) throw new AppError('region_mismatch', `your home region is ${player.region}, not ${asked}`, { region: player.region });
    }
    return initialScoreField(b.initialScore, deps.maxScoreDelta);
  });

  const update = write('update', 'set', (b) => {
    if (b.score === undefined) throw invalidField('score', 'is required');
    const v = validate.integer(b.score, 'score');
    if (v < 0 || v > deps.maxScore) throw new AppError('score_out_of_range', `score must be in 0..${deps.maxScore}`, { max_score: deps.maxScore });
    return v;
  });

  const add = write('add', 'incr', (b) => {
    if (b.delta === undefined) throw invalidField('delta', 'is required');
    const v = validate.integer(b.delta, 'delta');
    if (v === 0 || Math.abs(v) > deps.maxScoreDelta) throw invalidField('delta', `must be a non-zero integer with |delta| <= ${deps.maxScoreDelta}`);
    return v;
  });

  // ------------------------------------------------------------ reads
  const viewOf = (r: HotRequest) => deps.router.normalizeRegion(queryParam(r.query, 'region'));
  const player = (r: HotRequest) => validate.userId(r.params.userId, 'userId');
  // A GLOBAL read with a shard down is 503 unless the client accepts a partial answer.
  const opts = (r: HotRequest) => ({ partial: validate.queryBool(queryParam(r.query, 'partial'), 'partial') });

  const top: HotHandler = async (r) => {
    const view = viewOf(r);
    const limit = validate.queryInt(queryParam(r.query, 'limit'), 'limit', 10, 1, 1000);
    return new JsonText(await deps.views.topText(projectOf(r), main(r), ALL_TIME, view, limit, opts(r), ORIGINAL_TOP));
  };

  const rank: HotHandler = async (r) => {
    const view = viewOf(r);
    const { answer: a, homeRegion } = await deps.views.placed(projectOf(r), main(r), ALL_TIME, view, player(r), opts(r)).catch(originalNotFound(view));
    return { found: true, user_id: a.user_id, name: a.name, region: homeRegion, board: view, score: a.score, rank: a.rank, total: a.total, percentile: a.percentile, ...partialOf(a) };
  };

  const around: HotHandler = async (r) => {
    const view = viewOf(r);
    const id = player(r);
    const range = validate.queryInt(queryParam(r.query, 'range'), 'range', 10, 1, 100);
    const a = await deps.views.around(projectOf(r), main(r), ALL_TIME, view, id, range, opts(r)).catch(originalNotFound(view));
    return { region: view, self: originalRow(a.self), around: a.around.map(originalRow), ...partialOf(a) };
  };

  const post = (path: string, handler: HotHandler): Route => ({ method: 'POST', path, auth: 'token', handler });
  const get = (path: string, handler: HotHandler): Route => ({ method: 'GET', path, auth: 'none', handler });
  return [
    post('/score/create', create),
    post('/score/update', update),
    post('/score/add', add),
    get('/top', top),
    get('/score', top),
    get('/rank/:userId', rank),
    get('/score/rank/:userId', rank),
    get('/around/:userId', around),
    get('/score/around/:userId', around),
  ];
}
