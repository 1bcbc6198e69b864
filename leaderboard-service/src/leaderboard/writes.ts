/**
 * Score writes. A write touches exactly one Redis, the player's home shard,
 * in one Lua script (score, boards, user hash, version, outbox event and
 * idempotency record together). The answer's global rank then costs one
 * count on each other shard.
 */
import { createHash } from 'node:crypto';
import { AppError, GLOBAL, type Identity, type ShardRouter } from '@lb/common';
import type { EventRelays } from '../events/relay.js';
import type { WriteLimits } from '../limits/write-limits.js';
import type { ShardStores, WriteInput } from '../redis/shard-store.js';
import type { BoardReader } from './reads.js';

export type WriteOp = 'register' | 'create' | 'update' | 'add';

export interface WriteRequest {
  player: Identity;
  op: WriteOp;
  /** Initial score (register/create), new score (update) or delta (add). */
  value: number;
  idempotencyKey?: string | undefined;
  requestId: string;
}

export interface WriteAnswer {
  ok: true;
  user_id: string;
  region: string;
  score: number;
  version: number;
  rank: { region: number | null; global: number };
}

export interface WriterSettings {
  maxScore: number;
  idempotencyTtlS: number;
  /** QUEUE_REJECT_LENGTH: refuse writes while this many events wait to be persisted. */
  backlogLimit: number;
}

/**
 * Test-only fault hook, run after the Redis write committed and before its
 * event is handed to the queue (a crash here is what the outbox sweeper is for).
 */
export type AfterRedisWriteHook = (req: WriteRequest) => void;

export interface WriterDeps {
  router: ShardRouter;
  stores: ShardStores;
  reader: BoardReader;
  limits: WriteLimits;
  relays: EventRelays;
  afterRedisWrite?: AfterRedisWriteHook | undefined;
}

export class ScoreWriter {
  private readonly router: ShardRouter;
  private readonly stores: ShardStores;
  private readonly reader: BoardReader;

  constructor(
    private readonly deps: WriterDeps,
    private readonly settings: WriterSettings,
  ) {
    this.router = deps.router;
    this.stores = deps.stores;
    this.reader = deps.reader;
  }

  /**
   * Applies one write: limits first (nothing changes when refused), then the
   * atomic script on the home shard, then the event hand-off and the answer.
   */
  async write(req: WriteRequest): Promise<WriteAnswer> {
    const { player } = req;
    const shard = this.router.homeShard(player.userId, player.region);
    const store = this.stores.get(shard.id);
    await this.deps.limits.take(shard.id, player.userId, player.region);
    const fingerprint = req.idempotencyKey === undefined ? undefined : fingerprintOf(req);
    const input: WriteInput = {
      op: req.op,
      value: req.value,
      userId: player.userId,
      name: player.name,
      region: player.region,
      regionalBoard: player.region === GLOBAL ? undefined : player.region,
      nowMs: Date.now(),
      maxScore: this.settings.maxScore,
      requestId: req.requestId,
      backlogLimit: this.settings.backlogLimit,
    };
    if (req.idempotencyKey !== undefined && fingerprint !== undefined) {
      input.idempotency = { key: req.idempotencyKey, fingerprint, ttlS: this.settings.idempotencyTtlS };
    }
    const r = await store.write(input);

    if (r.kind === 'out_of_range') {
      throw new AppError('score_out_of_range', `resulting score ${r.attempted} is outside [0, ${this.settings.maxScore}]`, {
        score: r.current,
        max_score: this.settings.maxScore,
      });
    }
    if (r.kind === 'replay') return this.replay(req, r.stored, fingerprint!, shard.id);
    if (r.kind === 'queue_full') {
      throw new AppError('queue_full', `shard ${shard.id} has ${r.backlog} events waiting to be persisted`, {
        queue_length: r.backlog,
        retry_after: 1,
      });
    }
    if (r.event) {
      this.deps.afterRedisWrite?.(req);
      this.deps.relays.get(shard.id).push(r.event.id, r.event.json);
    }

    const [global] = await Promise.all([
      this.reader.globalRankOf(r.score, shard.id, r.globalHigherHere),
      // Redis may send a reply before the pub/sub messages of the same step, so
      // a write that changed a top page answers only after one more round
      // trip to its shard: by then every replica's subscription has the
      // message in its socket, ahead of any request the answer could prompt
      // (see top-cache.ts).
      r.topChanged ? store.ping() : undefined,
    ]);
    const answer: WriteAnswer = {
      ok: true,
      user_id: player.userId,
      region: player.region,
      score: r.score,
      version: r.version,
      rank: { region: r.regionalRank, global },
    };
    if (req.idempotencyKey !== undefined) {
      await store.storeIdempotentResponse(
        player.userId,
        req.idempotencyKey,
        JSON.stringify({ fingerprint, response: answer }),
      );
    }
    return answer;
  }

  /** A player's current score (0 when the player has no board entry yet). */
  async currentScore(player: Identity): Promise<number> {
    return this.stores.get(this.router.homeShard(player.userId, player.region).id).currentScore(player.userId);
  }

  /**
   * A repeated Idempotency-Key: the first answer if it was recorded in full,
   * else one rebuilt from the core record the write script kept.
   */
  private async replay(req: WriteRequest, stored: string, fingerprint: string, shardId: string): Promise<WriteAnswer> {
    const rec = JSON.parse(stored) as {
      fingerprint: string;
      response?: WriteAnswer;
      score?: number;
      version?: number;
      regional?: number;
      higher?: number;
    };
    if (rec.fingerprint !== fingerprint) {
      throw new AppError('idempotency_key_reuse', 'this Idempotency-Key was used for a different request');
    }
    if (rec.response) return rec.response;
    const score = rec.score ?? 0;
    return {
      ok: true,
      user_id: req.player.userId,
      region: req.player.region,
      score,
      version: rec.version ?? 0,
      rank: {
        region: rec.regional === undefined || rec.regional < 0 ? null : rec.regional,
        global: await this.reader.globalRankOf(score, shardId, rec.higher ?? 0),
      },
    };
  }
}

/** What makes two requests "the same" for an Idempotency-Key. */
function fingerprintOf(req: WriteRequest): string {
  return createHash('sha256').update(`${req.op}\u0000${req.value}`).digest('base64url').slice(0, 22);
}
