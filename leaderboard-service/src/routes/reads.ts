/**
 * Public board reads, at the new paths and at the original implementation's
 * (`GET /score?region&limit`, `/score/rank/:userId`, `/score/around/:userId`).
 * Served on the hot path (see http/hot-path.ts): input checks and mapping only.
 */
import { validate, type ShardRouter } from '@lb/common/contracts';
import { JsonText, type HotHandler, type HotRequest, type Route } from '../http/hot-path.js';
import type { BoardReader } from '../leaderboard/reads.js';

/** A query parameter; a repeated one comes back as an array, which every check refuses. */
export function queryParam(query: URLSearchParams, name: string): string | string[] | undefined {
  const all = query.getAll(name);
  return all.length === 0 ? undefined : all.length === 1 ? all[0] : all;
}

export function readRoutes(deps: { reader: BoardReader; router: ShardRouter }): Route[] {
  const board = (r: HotRequest) => deps.router.normalizeRegion(queryParam(r.query, 'region'));
  const player = (r: HotRequest) => validate.userId(r.params.userId, 'userId');
  // A GLOBAL read with a shard down is 503 unless the client accepts a partial answer.
  const opts = (r: HotRequest) => ({ partial: validate.queryBool(queryParam(r.query, 'partial'), 'partial') });

  const top: HotHandler = async (r) => {
    const b = board(r);
    return new JsonText(await deps.reader.topJson(b, validate.queryInt(queryParam(r.query, 'limit'), 'limit', 10, 1, 1000), opts(r)));
  };
  const rank: HotHandler = (r) => {
    const b = board(r);
    return deps.reader.rank(b, player(r), opts(r));
  };
  const around: HotHandler = (r) => {
    const b = board(r);
    const id = player(r);
    return deps.reader.around(b, id, validate.queryInt(queryParam(r.query, 'range'), 'range', 10, 1, 100), opts(r));
  };

  const get = (path: string, handler: HotHandler): Route => ({ method: 'GET', path, auth: 'none', handler });
  return [
    get('/top', top),
    get('/score', top),
    get('/rank/:userId', rank),
    get('/score/rank/:userId', rank),
    get('/around/:userId', around),
    get('/score/around/:userId', around),
  ];
}
