/**
 * Score submissions to boards, `main` included (the original /score/*
 * endpoints and registration are submissions to it): the board's rules are
 * checked here (who may write, the operator, metadata), then one atomic
 * script on the player's home shard checks the admission, applies the
 * operator to the period's views, takes the tokens and writes the outbox
 * (lua/write.lua).
 *
 * All or nothing, as the client sees it: every refusal (limits, range,
 * backlog, a shard that does not answer) happens at or before the script,
 * which changes nothing when it refuses. Once the script has applied a
 * write (the commit point) nothing turns it into an error: a global rank
 * that cannot be counted because another shard is down is answered as
 * `null` with the shards that are missing, and the other follow-ups (event
 * hand-off, cache barrier, idempotency record) fail quietly, each with a
 * fallback that keeps the write's guarantees.
 *
 * The period a write lands in is decided by this replica's clock when it
 * handles the write (one clock per write); see docs/ARCHITECTURE.md.
 */
import { AppError, GLOBAL, hourStartMs, invalidField, periodAt, projectScope, storedOf, usageHour, usageMonth, type Board, type Operator, type ProjectLimits, type ProjectRef, type ShardRouter } from '@lb/common/contracts';
import { currentTraceparent, type Identity, type Logger } from '@lb/common/platform';
import { createHash } from 'node:crypto';
import { BoardStore, type BoardKey, type BoardWriteInput } from '../redis/board-store.js';
import type { BucketSpec, ShardStores, WriteBuckets } from '../redis/shard-store.js';
import type { ServiceMetrics } from '../metrics.js';
import { Meter } from '../usage/meter.js';

export interface BoardSubmission {
  /** The project the board and the player belong to (its keys are the only ones the write touches, beside the shard's own). */
  project: ProjectRef;
  /** The project's limits (its tenant's plan, http/credentials.ts): its write bucket and backlog share. */
  limits: ProjectLimits;
  board: Board;
  player: Identity;
  /** A player writing with their own token (false: a server with an API key). */
  byPlayer: boolean;
  value: number;
  /**
   * An operator other than the board's, where the board allows it; or
   * `insert` (set if absent: registration's entry, the original
   * /score/create), which any board takes.
   */
  op?: Operator | 'insert' | undefined;
  /**
   * The original API's name of the write (`create`, `update`, `add`,
   * `register` on `main`): the event's op, and what an Idempotency-Key's
   * fingerprint is made of, as before main ran on this engine. Undefined:
   * the operator.
   */
  legacyOp?: 'create' | 'update' | 'add' | 'register' | undefined;
  /** Takes no token (registration: bounded by password hashing instead). */
  noBuckets?: boolean | undefined;
  /** The metadata object as the client sent it (undefined: keep what the entry has). */
  metadata?: unknown;
  idempotencyKey?: string | undefined;
  requestId: string;
  /** The time the period is chosen by (default: the writer's clock). */
  nowMs?: number;
}

export interface BoardWriteAnswer {
  ok: true;
  board: string;
  period: string;
  user_id: string;
  region: string;
  score: number;
  changed: boolean;
  version: number;
  rank: { region: number | null; global: number | null };
  missing_shards?: string[];
}

/**
 * Test-only fault hook of every board's writer, run after a write's script
 * committed and before its answer (a crash here leaves an event only the
 * outbox knows of, which the shard's relay enqueues all the same).
 */
export type AfterRedisWriteHook = (write: { board: string; userId: string }) => void;

const NO_BUCKET: BucketSpec = { capacity: 0, windowMs: 1 };
/** Registration takes no token (see {@link BoardSubmission.noBuckets}). */
const NO_BUCKETS: WriteBuckets = { project: NO_BUCKET, user: NO_BUCKET, region: NO_BUCKET };
/** A plan's writes per second: a bucket of that capacity refilled over one second. */
const PROJECT_BUCKET_WINDOW_MS = 1000;

export interface BoardWriterSettings {
  idempotencyTtlS: number;
  backlogLimit: number;
  buckets: { user: BucketSpec; region: BucketSpec };
  /** USAGE_LIVE_TTL_S: how long an hour's usage counters stay in Redis. */
  usageTtlS: number;
}

export class BoardWriter {
  constructor(
    private readonly deps: {
      router: ShardRouter;
      stores: ShardStores;
      log: Logger;
      clock: () => number;
      /** Each tenant's monthly quota (the write script counts the writes; the meter hands out allowances). */
      meter: Meter;
      metrics?: ServiceMetrics;
      afterRedisWrite?: AfterRedisWriteHook | undefined;
    },
    private readonly settings: BoardWriterSettings,
  ) {}

  /** Applies one submission; counted by region and outcome in `lb_writes_total`. */
  submit(s: BoardSubmission): Promise<BoardWriteAnswer> {
    const m = this.deps.metrics;
    return m?.enabled ? m.write(s.player.region, this.apply(s)) : this.apply(s);
  }

  private async apply(s: BoardSubmission): Promise<BoardWriteAnswer> {
    const { board, player } = s;
    if (s.byPlayer && !board.clientWrites) {
      throw new AppError('client_writes_disabled', `board ${board.id} takes scores from game servers only`, { board: board.id });
    }
    if (s.op !== undefined && s.op !== 'insert' && s.op !== board.operator && !board.allowOperatorOverride) {
      throw invalidField('op', `board ${board.id} does not allow another operator than ${board.operator}`);
    }
    const operator = s.op ?? board.operator;
    let metadata: string | undefined;
    if (s.metadata !== undefined) {
      if (s.metadata === null || typeof s.metadata !== 'object' || Array.isArray(s.metadata)) throw invalidField('metadata', 'must be a JSON object');
      metadata = JSON.stringify(s.metadata);
      const bytes = Buffer.byteLength(metadata);
      if (bytes > board.maxMetadataBytes) {
        throw new AppError('metadata_too_large', `metadata is ${bytes} bytes; board ${board.id} takes at most ${board.maxMetadataBytes}`, {
          max_metadata_bytes: board.maxMetadataBytes,
        });
      }
    }
    const now = s.nowMs ?? this.deps.clock();
    const period = periodAt(board.resetRule, now).id;
    const hour = usageHour(now);
    const quota = s.limits.monthlyOps > 0 ? { tenant: s.project.tenant, limit: s.limits.monthlyOps, month: usageMonth(now) } : undefined;
    const shard = this.deps.router.homeShard(player.userId, player.region);
    const store = new BoardStore(this.deps.stores.get(shard.id), s.project);
    const fingerprint = s.idempotencyKey === undefined ? undefined : fingerprintOf(s, period, operator, metadata);
    const input: BoardWriteInput = {
      board,
      period,
      operator,
      op: s.legacyOp ?? operator,
      value: s.value,
      userId: player.userId,
      name: player.name,
      region: player.region,
      regionalView: player.region === GLOBAL ? undefined : player.region,
      metadata,
      nowMs: Date.now(),
      ...(s.idempotencyKey !== undefined && fingerprint !== undefined && { idempotency: { key: s.idempotencyKey, fingerprint, ttlS: this.settings.idempotencyTtlS } }),
      requestId: s.requestId,
      backlogLimit: this.settings.backlogLimit,
      // A share of QUEUE_REJECT_LENGTH; with no backlog limit (0: never refuse), no share either.
      projectBacklogLimit: s.limits.backlogShare >= 1 || this.settings.backlogLimit <= 0 ? 0 : Math.max(1, Math.floor(this.settings.backlogLimit * s.limits.backlogShare)),
      buckets: s.noBuckets ? NO_BUCKETS : { project: { capacity: s.limits.writesPerS, windowMs: PROJECT_BUCKET_WINDOW_MS }, ...this.settings.buckets },
      traceparent: currentTraceparent(),
      usage: { hour, hourMs: hourStartMs(hour), ttlS: this.settings.usageTtlS },
      quotaMonth: quota?.month,
    };
    let r = await store.write(input);
    // The shard's allowance of the tenant's quota is used up: more from the tenant's month, then again.
    for (let tries = 0; r.kind === 'quota_lease'; tries++) {
      const meter = this.deps.meter;
      if (tries >= Meter.MOST_LEASES) throw new AppError('unavailable', `the quota allowance of tenant ${quota!.tenant} on shard ${shard.id} is contended; try again`, { retry_after: 1 });
      if ((await meter.refill(quota!.tenant, quota!.limit, shard.id, quota!.month)) === 0) throw meter.exceeded(quota!.tenant, await meter.view(quota!.tenant, quota!.limit));
      r = await store.write(input);
    }
    switch (r.kind) {
      case 'out_of_range':
        throw new AppError('score_out_of_range', `score ${r.attempted} is outside [${board.minScore}, ${board.maxScore}] of board ${board.id}`, {
          score: r.current,
          min_score: board.minScore,
          max_score: board.maxScore,
        });
      case 'queue_full':
        throw new AppError(
          'queue_full',
          r.scope === 'project' ? `project ${projectScope(s.project)} has ${r.backlog} events waiting to be persisted on shard ${shard.id}, its plan's share` : `shard ${shard.id} has ${r.backlog} events waiting to be persisted`,
          { queue_length: r.backlog, retry_after: 1 },
        );
      case 'project_rate_limited':
        throw new AppError('project_rate_limited', `too many writes for project ${projectScope(s.project)} (plan ${s.limits.plan}: ${s.limits.writesPerS} a second on each shard)`, {
          retry_after: Math.max(1, Math.ceil(r.waitMs / 1000)),
        });
      case 'rate_limited':
      case 'region_rate_limited':
        throw new AppError(r.kind, r.kind === 'rate_limited' ? 'too many writes for this player' : `too many writes in region ${player.region}`, {
          retry_after: Math.max(1, Math.ceil(r.waitMs / 1000)),
        });
      case 'period_closed':
        // This replica's clock is behind the closer's (or the grace): the write would land in a closed period.
        throw new AppError('period_closed', `period ${period} of board ${board.id} is closed; the next one has started`, { board: board.id, period, retry_after: 1 });
      case 'replay':
        return this.replay(s, period, r.stored, fingerprint!, shard.id);
      case 'ok':
        break;
    }
    // Commit point: applied. Nothing below may fail the request (see leaderboard/writes.ts).
    // The event is in the shard's outbox: the shard's relay enqueues it (events/relay.ts).
    if (r.event) this.deps.afterRedisWrite?.({ board: board.id, userId: player.userId });
    const [global] = await Promise.all([
      this.globalRank(s.project, board, period, shard.id, r.key, r.ahead),
      r.topChanged ? store.store.ping().catch(() => undefined) : undefined,
    ]);
    const answer: BoardWriteAnswer = {
      ok: true,
      board: board.id,
      period,
      user_id: player.userId,
      region: player.region,
      score: r.score,
      changed: r.changed,
      version: r.version,
      rank: { region: r.regionalRank, global: global.rank },
      ...(global.missing.length > 0 && { missing_shards: global.missing }),
    };
    if (s.idempotencyKey !== undefined) {
      await store
        .storeIdempotentResponse(player.userId, board.id, s.idempotencyKey, JSON.stringify({ fingerprint, response: answer }))
        .catch(() => undefined);
    }
    return answer;
  }

  /** 1 + players ahead on every shard's GLOBAL view; null with the missing shards when one cannot be counted. */
  private async globalRank(project: ProjectRef, board: Board, period: string, homeShard: string, key: BoardKey, aheadHere: number): Promise<{ rank: number | null; missing: string[] }> {
    const others = this.deps.stores.all().filter((s) => s.shard.id !== homeShard);
    const counts = await Promise.allSettled(others.map((s) => new BoardStore(s, project).before(board, period, GLOBAL, [key])));
    const missing = others.filter((_, i) => counts[i]!.status === 'rejected').map((s) => s.shard.id);
    if (missing.length > 0) return { rank: null, missing };
    let ahead = aheadHere;
    for (const c of counts) ahead += (c as PromiseFulfilledResult<{ ahead: number[] }>).value.ahead[0]!;
    return { rank: ahead + 1, missing };
  }

  /** The player's home shard is connected (a write would be sent, not refused at once). */
  homeReady(player: Identity): boolean {
    return this.deps.stores.get(this.deps.router.homeShard(player.userId, player.region).id).ready();
  }

  /**
   * A repeated Idempotency-Key: the first answer, or one rebuilt from the
   * core record. Records of `main` written before it ran on this engine
   * (the same key names) have `higher` for `before`, no member or stored
   * score, and the original answer without board, period or changed.
   */
  private async replay(s: BoardSubmission, period: string, stored: string, fingerprint: string, shardId: string): Promise<BoardWriteAnswer> {
    const rec = JSON.parse(stored) as { fingerprint: string; response?: Partial<BoardWriteAnswer> & Omit<BoardWriteAnswer, 'board' | 'period' | 'changed'>; score: number; version: number; regional: number; before?: number; higher?: number; member?: string; stored?: string };
    if (rec.fingerprint !== fingerprint) throw new AppError('idempotency_key_reuse', 'this Idempotency-Key was used for a different request');
    if (rec.response) {
      const r = rec.response;
      if (r.board !== undefined) return r as BoardWriteAnswer;
      return { ok: true, board: s.board.id, period, user_id: r.user_id, region: r.region, score: r.score, changed: true, version: r.version, rank: r.rank, ...(r.missing_shards && { missing_shards: r.missing_shards }) };
    }
    const key = { stored: rec.stored ?? storedOf(s.board.order, rec.score), member: rec.member ?? s.player.userId };
    const global = await this.globalRank(s.project, s.board, period, shardId, key, rec.before ?? rec.higher ?? 0);
    return {
      ok: true,
      board: s.board.id,
      period,
      user_id: s.player.userId,
      region: s.player.region,
      score: rec.score,
      changed: true,
      version: rec.version,
      rank: { region: rec.regional < 0 ? null : rec.regional, global: global.rank },
      ...(global.missing.length > 0 && { missing_shards: global.missing }),
    };
  }
}

/**
 * What makes two requests "the same" for an Idempotency-Key: the original
 * API's writes by their name and value (as before `main` ran on this
 * engine), board submissions by board, period, operator, value and metadata.
 */
function fingerprintOf(s: BoardSubmission, period: string, operator: string, metadata: string | undefined): string {
  const text = s.legacyOp !== undefined ? `${s.legacyOp}\u0000${s.value}` : `${s.board.id}\u0000${period}\u0000${operator}\u0000${s.value}\u0000${metadata ?? ''}`;
  return createHash('sha256').update(text).digest('base64url').slice(0, 22);
}
