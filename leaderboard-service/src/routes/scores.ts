/**
 * POST /score/create, /score/update, /score/add: the player is the token's
 * subject. Served on the hot path (see http/hot-path.ts): input checks and
 * mapping only.
 */
import { AppError, invalidField, validate, type ShardRouter } from '@lb/common/contracts';
import { type Identity } from '@lb/common/platform';
import type { HotHandler, HotRequest, Route } from '../http/hot-path.js';
import { initialScoreField, regionField } from './fields.js';
import type { ScoreWriter, WriteOp } from '../leaderboard/writes.js';
import type { ServiceMetrics } from '../metrics.js';

export interface ScoreRouteDeps {
  writer: ScoreWriter;
  router: ShardRouter;
  maxScore: number;
  maxScoreDelta: number;
  /** The board main's client_writes (an admin may make it server-only). */
  clientWrites: () => boolean;
  /** Refusals by these checks are writes refused too (`lb_writes_total`); the writer counts the rest. */
  metrics?: ServiceMetrics | undefined;
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

export function scoreRoutes(deps: ScoreRouteDeps): Route[] {
  const handle =
    (op: WriteOp, readValue: (b: Record<string, unknown>, player: Identity) => number): HotHandler =>
    (r: HotRequest) => {
      const player = r.player!;
      let value: number;
      let key: string | undefined;
      try {
        if (!deps.clientWrites()) throw new AppError('client_writes_disabled', 'board main takes scores from game servers only', { board: 'main' });
        const b = validate.bodyObject(r.body);
        // The player is always the token's subject; naming anyone else is refused.
        if (b.user_id !== undefined && b.user_id !== player.userId) {
          throw new AppError('forbidden', 'a player can only write their own score');
        }
        value = readValue(b, player);
        key = idempotencyKey(r);
      } catch (e) {
        deps.metrics?.refused(player.region, e);
        throw e;
      }
      return deps.writer.write({ player, op, value, idempotencyKey: key, requestId: r.requestId });
    };

  const create = handle('create', (b, player) => {
    if (b.region !== undefined && b.region !== null) {
      const asked = regionField(deps.router, b.region);
      if (asked !== player.region) {
        throw new AppError('region_mismatch', `your home region is ${player.region}, not ${asked}`, { region: player.region });
      }
    }
    return initialScoreField(b.initialScore, deps.maxScoreDelta);
  });

  const update = handle('update', (b) => {
    if (b.score === undefined) throw invalidField('score', 'is required');
    const v = validate.integer(b.score, 'score');
    if (v < 0 || v > deps.maxScore) {
      throw new AppError('score_out_of_range', `score must be in 0..${deps.maxScore}`, { max_score: deps.maxScore });
    }
    return v;
  });

  const add = handle('add', (b) => {
    if (b.delta === undefined) throw invalidField('delta', 'is required');
    const v = validate.integer(b.delta, 'delta');
    if (v === 0 || Math.abs(v) > deps.maxScoreDelta) {
      throw invalidField('delta', `must be a non-zero integer with |delta| <= ${deps.maxScoreDelta}`);
    }
    return v;
  });

  const post = (path: string, handler: HotHandler): Route => ({ method: 'POST', path, auth: 'token', handler });
  return [post('/score/create', create), post('/score/update', update), post('/score/add', add)];
}

function idempotencyKey(r: HotRequest): string | undefined {
  const v = r.headers['idempotency-key'];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !IDEMPOTENCY_KEY.test(v)) {
    throw new AppError('invalid_payload', 'Idempotency-Key must be 1-128 visible ASCII characters', { field: 'Idempotency-Key' });
  }
  return v;
}
