/**
 * Public board reads, at the new paths and at the original implementation's
 * (`GET /score?region&limit`, `/score/rank/:userId`, `/score/around/:userId`).
 */
import { Router, type Request } from 'express';
import { validate, type ShardRouter } from '@lb/common';
import type { BoardReader } from '../leaderboard/reads.js';

export function readRoutes(deps: { reader: BoardReader; router: ShardRouter }): Router {
  const r = Router();
  const board = (req: Request) => deps.router.normalizeRegion(req.query.region);
  const player = (req: Request) => validate.userId(req.params.userId, 'userId');

  const top = async (req: Request, res: import('express').Response) => {
    const b = board(req);
    res.json(await deps.reader.top(b, validate.queryInt(req.query.limit, 'limit', 10, 1, 1000)));
  };
  const rank = async (req: Request, res: import('express').Response) => {
    const b = board(req);
    res.json(await deps.reader.rank(b, player(req)));
  };
  const around = async (req: Request, res: import('express').Response) => {
    const b = board(req);
    const id = player(req);
    res.json(await deps.reader.around(b, id, validate.queryInt(req.query.range, 'range', 10, 1, 100)));
  };

  r.get('/top', top);
  r.get('/score', top);
  r.get('/rank/:userId', rank);
  r.get('/score/rank/:userId', rank);
  r.get('/around/:userId', around);
  r.get('/score/around/:userId', around);
  return r;
}
