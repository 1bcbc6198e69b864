/**
 * Score writes. A write touches exactly one Redis, the player's home shard,
 * in one Lua script (score, boards, user hash, version, outbox event and
 * idempotency record together). The answer's global rank then costs one
 * count on each other shard.
 *
 * All or nothing, as the client sees it: every refusal (limits, range,
 * backlog, a shard that does not answer) happens at or before the script,
 * which changes nothing when it refuses. Once the script has applied a write
 * (the commit point) nothing turns it into an error: a global rank that
 * cannot be counted because another shard is down is answered as `null`
 * with the shards that are missing, and the other follow-ups (event
 * hand-off, cache barrier, idempotency record) fail quietly, each with a
 * fallback that keeps the write's guarantees.
 */
import { createHash } from 'node:crypto';
import { AppError, GLOBAL, MAIN_BOARD, type ScoreOp, type ShardRouter } from '@lb/common/contracts';
import { currentTraceparent, type Identity, type Logger } from '@lb/common/platform';
import type { EventRelays } from '../events/relay.js';
import type { BucketSpec, ShardStores, WriteInput } from '../redis/shard-store.js';
import type { AfterRedisWriteHook } from '../boards/scores.js';
import type { BoardReader } from './reads.js';
import type { ServiceMetrics } from '../metrics.js';

/** The main board's operations. */
export type WriteOp = Extract<ScoreOp, 'register' | 'create' | 'update' | 'add'>;

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
  /** `global` is null when a shard could not be counted (named in `missing_shards`). */
  rank: { region: number | null; global: number | null };
  /** Shards that did not answer the global-rank count (only when `rank.global` is null). */
  missing_shards?: string[];
}

export interface WriterSettings {
  maxScore: number;
  idempotencyTtlS: number;
  /** QUEUE_REJECT_LENGTH: refuse writes while this many events wait to be persisted. */
  backlogLimit: number;
  /** USER_/REGION_RATE_LIMIT_*: the token buckets the write script keeps. */
  buckets: { user: BucketSpec; region: BucketSpec };
}

/** Registration takes no token (see {@link ScoreWriter.write}). */
const NO_BUCKETS = { user: { capacity: 0, windowMs: 1 }, region: { capacity: 0, windowMs: 1 } } as const;

export type { AfterRedisWriteHook } from '../boards/scores.js';

export interface WriterDeps {
  router: ShardRouter;
  stores: ShardStores;
  reader: BoardReader;
  relays: EventRelays;
  log: Logger;
  afterRedisWrite?: AfterRedisWriteHook | undefined;
  /** Counts outcomes by region (`lb_writes_total`). */
  metrics?: ServiceMetrics | undefined;
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
   * Applies one write: one atomic script on the home shard checks the
   * limits and applies the write (a refusal changes nothing and takes no
   * token), then the event hand-off and the answer. Registration places a
   * new player on the board once and takes no token (it is bounded by
   * password hashing, HASH_CONCURRENCY); backpressure applies to it too.
   */
  write(req: WriteRequest): Promise<WriteAnswer> {
    const m = this.deps.metrics;
    return m?.enabled ? m.write(req.player.region, this.apply(req)) : this.apply(req);
  }

  private async apply(req: WriteRequest): Promise<WriteAnswer> {
    const { player } = req;
    const shard = this.router.homeShard(player.userId, player.region);
    const store = this.stores.get(shard.id);
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
      buckets: req.op === 'register' ? NO_BUCKETS : this.settings.buckets,
      // The event carries the request's trace context (sampled requests only) to the relay and the worker.
      traceparent: currentTraceparent(),
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
    if (r.kind === 'rate_limited' || r.kind === 'region_rate_limited') {
      throw new AppError(r.kind, r.kind === 'rate_limited' ? 'too many writes for this player' : `too many writes in region ${player.region}`, {
        retry_after: Math.max(1, Math.ceil(r.waitMs / 1000)),
      });
    }
    // Commit point: the write is applied. Nothing below may fail the request.
    if (r.event) {
      this.deps.afterRedisWrite?.({ board: MAIN_BOARD, userId: player.userId });
      // In memory; should it ever throw, the event waits in the outbox for the sweeper.
      try {
        this.deps.relays.get(shard.id).push(r.event.id, r.event.json);
      } catch (e) {
        this.deps.log.error('event hand-off failed; the outbox sweeper will send it', { shard: shard.id, event: r.event.id, err: e as Error });
      }
    }

    const [global] = await Promise.all([
      this.reader.globalRankOf(r.score, shard.id, r.globalHigherHere),
      // Redis may send a reply before the pub/sub messages of the same step, so
      // a write that changed a top page answers only after one more round
      // trip to its shard: by then every replica's subscription has the
      // message in its socket, ahead of any request the answer could prompt
      // (see top-cache.ts). If the shard died right after the write, every
      // replica's subscription to it dropped too, and with it their copies.
      r.topChanged ? store.ping().catch(() => undefined) : undefined,
    ]);
    const answer: WriteAnswer = {
      ok: true,
      user_id: player.userId,
      region: player.region,
      score: r.score,
      version: r.version,
      rank: { region: r.regionalRank, global: global.rank },
      ...(global.missing.length > 0 && { missing_shards: global.missing }),
    };
    if (req.idempotencyKey !== undefined) {
      // The script already stored the write's core record under the key; a
      // replay rebuilds the answer from it if this fuller copy is missing.
      await store
        .storeIdempotentResponse(player.userId, req.idempotencyKey, JSON.stringify({ fingerprint, response: answer }))
        .catch(() => undefined);
    }
    return answer;
  }

  /** The player's home shard is connected (a write would be sent, not refused at once). */
  homeReady(player: Identity): boolean {
    return this.stores.get(this.router.homeShard(player.userId, player.region).id).ready();
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
    const global = await this.reader.globalRankOf(score, shardId, rec.higher ?? 0);
    return {
      ok: true,
      user_id: req.player.userId,
      region: req.player.region,
      score,
      version: rec.version ?? 0,
      rank: { region: rec.regional === undefined || rec.regional < 0 ? null : rec.regional, global: global.rank },
      ...(global.missing.length > 0 && { missing_shards: global.missing }),
    };
  }
}

/** What makes two requests "the same" for an Idempotency-Key. */
function fingerprintOf(req: WriteRequest): string {
  return createHash('sha256').update(`${req.op}\u0000${req.value}`).digest('base64url').slice(0, 22);
}
