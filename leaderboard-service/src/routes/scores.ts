/** POST /score/create, /score/update, /score/add: the player is the token's subject. */
import { Router, type Request } from 'express';
import { AppError, invalidField, validate, type ShardRouter } from '@lb/common';
import { playerOf } from '../http/middleware.js';
import type { ScoreWriter, WriteOp } from '../leaderboard/writes.js';

export interface ScoreRouteDeps {
  writer: ScoreWriter;
  router: ShardRouter;
  maxScore: number;
  maxScoreDelta: number;
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

export function scoreRoutes(deps: ScoreRouteDeps): Router {
  const r = Router();

  const handle = (op: WriteOp, readValue: (b: Record<string, unknown>, req: Request) => number) =>
    async (req: Request, res: import('express').Response) => {
      const player = playerOf(res);
      const b = validate.bodyObject(req.body ?? {});
      // The player is always the token's subject; naming anyone else is refused.
      if (b.user_id !== undefined && b.user_id !== player.userId) {
        throw new AppError('forbidden', 'a player can only write their own score');
      }
      const value = readValue(b, req);
      res.json(
        await deps.writer.write({
          player,
          op,
          value,
          idempotencyKey: idempotencyKey(req),
          requestId: res.locals.requestId as string,
        }),
      );
    };

  r.post('/create', handle('create', (b, req) => {
    if (b.region !== undefined && b.region !== null) {
      const asked = typeof b.region === 'string' ? deps.router.normalizeRegion(b.region) : undefined;
      if (asked === undefined) throw invalidField('region', 'must be a string');
      const home = playerOf(req.res!).region;
      if (asked !== home) throw new AppError('region_mismatch', `your home region is ${home}, not ${asked}`, { region: home });
    }
    if (b.initialScore === undefined || b.initialScore === null) return 0;
    const v = validate.integer(b.initialScore, 'initialScore');
    if (v < 0 || v > deps.maxScoreDelta) throw invalidField('initialScore', `must be in 0..${deps.maxScoreDelta}`);
    return v;
  }));

  r.post('/update', handle('update', (b) => {
    if (b.score === undefined) throw invalidField('score', 'is required');
    const v = validate.integer(b.score, 'score');
    if (v < 0 || v > deps.maxScore) {
      throw new AppError('score_out_of_range', `score must be in 0..${deps.maxScore}`, { max_score: deps.maxScore });
    }
    return v;
  }));

  r.post('/add', handle('add', (b) => {
    if (b.delta === undefined) throw invalidField('delta', 'is required');
    const v = validate.integer(b.delta, 'delta');
    if (v === 0 || Math.abs(v) > deps.maxScoreDelta) {
      throw invalidField('delta', `must be a non-zero integer with |delta| <= ${deps.maxScoreDelta}`);
    }
    return v;
  }));

  return r;
}

function idempotencyKey(req: Request): string | undefined {
  const v = req.headers['idempotency-key'];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !IDEMPOTENCY_KEY.test(v)) {
    throw new AppError('invalid_payload', 'Idempotency-Key must be 1-128 visible ASCII characters', { field: 'Idempotency-Key' });
  }
  return v;
}
