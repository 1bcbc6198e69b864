/**
 * The board engine's data layer on one shard: typed methods over the
 * engine's scripts (see lua/includes/board.lua for the layout), each answer
 * decoded by name. Every board (`main` included) is read and written here.
 */
import { hourStartMs, projectScope, storedOf, usageHour, type ProjectKeys, type ProjectRef } from '@lb/common/contracts';
import { decodeAnswer, boardRows, num, nums, packArgs, str, type BoardRow } from './contract.js';
import { SCRIPTS } from './scripts.js';
import type { ShardStore, WriteBuckets } from './shard-store.js';
import { packBuckets, TOP_CACHE_DEPTH } from './shard-store.js';

/** How long an hour's usage counters stay in Redis unless the writer says (USAGE_LIVE_TTL_S's default). */
export const USAGE_TTL_S = 3 * 86_400;

/** What the scripts need of a board's rules. */
export interface BoardRules {
  id: string;
  order: 'desc' | 'asc';
  tieBreak: 'shared' | 'earliest';
  minScore: number;
  maxScore: number;
}

/** A place on a view: the stored score and the member. */
export interface BoardKey {
  stored: string;
  member: string;
}

export interface BoardWriteInput {
  board: BoardRules;
  period: string;
  /** The board's operators, and `insert` (set if absent). */
  operator: 'set' | 'incr' | 'best' | 'insert';
  /** The event's op: the operator, or the original API's create | update | add | register on `main`. */
  op: string;
  value: number;
  userId: string;
  name: string;
  /** Home region, or GLOBAL for GLOBAL-only players. */
  region: string;
  /** The regional view to update, undefined for GLOBAL-only players. */
  regionalView: string | undefined;
  /** Metadata JSON text to store with the entry, or undefined to keep what it has. */
  metadata: string | undefined;
  nowMs: number;
  idempotency?: { key: string; fingerprint: string; ttlS: number };
  requestId: string;
  backlogLimit: number;
  /** The most events of the write's project the shard's backlog may hold (its plan's share; 0 = no share of its own). */
  projectBacklogLimit: number;
  buckets: WriteBuckets;
  /** The request's W3C traceparent for the event ('' or absent = not traced). */
  traceparent?: string;
  /** The hour an accepted write is metered in (contracts/usage.ts) and how long the hour's counters are kept (default: the hour of `nowMs`, kept {@link USAGE_TTL_S}). */
  usage?: { hour: string; hourMs: number; ttlS: number };
  /** The tenant's month, when it has a monthly quota: an accepted write takes one from this shard's allowance. */
  quotaMonth?: string | undefined;
}

export type BoardWriteResult =
  | {
      kind: 'ok';
      score: number;
      version: number;
      changed: boolean;
      previous: number | null;
      regionalRank: number | null;
      /** Players ahead on this shard's GLOBAL view, by the board's ties. */
      ahead: number;
      key: BoardKey;
      event: { id: string; json: string } | undefined;
      topChanged: boolean;
    }
  | { kind: 'replay'; stored: string }
  | { kind: 'out_of_range'; current: number | null; attempted: number }
  | { kind: 'queue_full'; backlog: number; scope: 'shard' | 'project' }
  | { kind: 'project_rate_limited'; waitMs: number }
  | { kind: 'rate_limited'; waitMs: number }
  | { kind: 'region_rate_limited'; waitMs: number }
  | { kind: 'period_closed' }
  /** This shard's allowance of the tenant's quota is used up (nothing changed): ask for more, then again. */
  | { kind: 'quota_lease' };

export interface FoundEntry extends BoardRow {
  /** Players ahead on this shard's view, by the board's ties. */
  ahead: number;
  /** Players with a strictly worse score on this shard's view. */
  worse: number;
  /** The player's home region ('' for an entry restored before regions were kept). */
  region: string;
}

/**
 * The prefix of the top-changed messages of a board's period
 * (`<tenant>/<project>/<board>/<period>/`, then the view): the names the
 * top-page cache and the live channels follow.
 */
export function topChangePrefix(project: ProjectRef, board: string, period: string): string {
  return `${projectScope(project)}/${board}/${period}/`;
}

/** The top-changed name of one view of a board's period (see {@link topChangePrefix}). */
export function topChangeName(project: ProjectRef, board: string, period: string, view: string): string {
  return topChangePrefix(project, board, period) + view;
}

/** One project's boards on one shard: every key it reads or writes is the project's (or the shard's own). */
export class BoardStore {
  /** The project's keys on this shard. */
  readonly keys: ProjectKeys;

  constructor(
    readonly store: ShardStore,
    readonly project: ProjectRef,
  ) {
    this.keys = store.keys.project(project);
  }

  /** Applies one submission atomically (see write.lua); throws StoreUnavailable when the shard does not answer in time. */
  async write(w: BoardWriteInput): Promise<BoardWriteResult> {
    const k = this.keys;
    const shard = this.store.keys;
    const p = k.boardPeriod(w.board.id, w.period);
    const hour = usageHour(w.nowMs);
    const usage = w.usage ?? { hour, hourMs: hourStartMs(hour), ttlS: USAGE_TTL_S };
    const keys = [
      p.view('GLOBAL'),
      p.versions,
      p.members,
      p.metadata,
      k.names,
      k.idempotency(w.userId, w.board.id, w.idempotency?.key ?? ''),
      shard.outbox,
      shard.outboxIndex,
      k.userBucket(w.userId),
      shard.regionBucket(w.region),
      p.closed,
      k.writeBucket,
      shard.outboxProjects,
      k.regions,
      shard.usage.counts(usage.hour, this.project.tenant),
      shard.usage.tenants(usage.hour),
      shard.usage.hours,
      shard.quota(this.project.tenant, w.quotaMonth ?? '-').allowance,
    ];
    if (w.regionalView !== undefined) keys.push(p.view(w.regionalView));
    const args = packArgs({
      operator: w.operator,
      op: w.op,
      value: w.value,
      user_id: w.userId,
      name: w.name,
      region: w.region,
      now: String(w.nowMs),
      order: w.board.order,
      tie_break: w.board.tieBreak,
      min_score: w.board.minScore,
      max_score: w.board.maxScore,
      metadata: w.metadata ?? '',
      fingerprint: w.idempotency?.fingerprint ?? '',
      idempotency_ttl_s: w.idempotency?.ttlS ?? 0,
      request_id: w.requestId,
      backlog_limit: w.backlogLimit,
      project_backlog_limit: w.projectBacklogLimit,
      deadline_ms: Date.now() + Math.floor(this.store.conn.timeoutMs / 2),
      buckets: packBuckets(w.buckets),
      tenant: this.project.tenant,
      project: this.project.project,
      board: w.board.id,
      period: w.period,
      top_depth: TOP_CACHE_DEPTH,
      top_channel: shard.topChanged,
      top_prefix: topChangePrefix(this.project, w.board.id, w.period),
      traceparent: w.traceparent ?? '',
      usage_hour: usage.hour,
      usage_hour_ms: usage.hourMs,
      usage_ttl_s: usage.ttlS,
      quota: w.quotaMonth === undefined ? 0 : 1,
    });
    const a = decodeAnswer('write', await this.store.conn.runScript(SCRIPTS.write, keys, args, true));
    switch (a.status) {
      case 'ok': {
        this.store.writeRate.add();
        const regional = num(a, 'regional');
        const eventId = str(a, 'event_id');
        const previous = str(a, 'previous');
        return {
          kind: 'ok',
          score: num(a, 'score'),
          version: num(a, 'version'),
          changed: num(a, 'changed') === 1,
          previous: previous === '' ? null : Number(previous),
          regionalRank: regional < 0 ? null : regional,
          ahead: num(a, 'before'),
          key: { stored: str(a, 'stored'), member: str(a, 'member') },
          event: eventId === '' ? undefined : { id: eventId, json: str(a, 'event') },
          topChanged: num(a, 'published') === 1,
        };
      }
      case 'replay':
        return { kind: 'replay', stored: str(a, 'stored') };
      case 'out_of_range': {
        const current = str(a, 'current');
        return { kind: 'out_of_range', current: current === '' ? null : Number(current), attempted: num(a, 'attempted') };
      }
      case 'queue_full':
        return { kind: 'queue_full', backlog: num(a, 'backlog'), scope: str(a, 'scope') === 'project' ? 'project' : 'shard' };
      case 'project_rate_limited':
        return { kind: 'project_rate_limited', waitMs: num(a, 'wait_ms') };
      case 'rate_limited':
        return { kind: 'rate_limited', waitMs: num(a, 'wait_ms') };
      case 'region_rate_limited':
        return { kind: 'region_rate_limited', waitMs: num(a, 'wait_ms') };
      case 'period_closed':
        return { kind: 'period_closed' };
      case 'quota_lease':
        return { kind: 'quota_lease' };
      case 'expired':
        throw this.store.conn.unavailable();
    }
  }

  /** Replaces an idempotency record with the full response, keeping its TTL. */
  async storeIdempotentResponse(userId: string, board: string, key: string, value: string): Promise<void> {
    await this.store.conn.call(() => this.store.client.set(this.keys.idempotency(userId, board, key), value, { XX: true, KEEPTTL: true }));
  }

  /** Removes every key of a board of the project on this shard (all its periods). */
  purgeBoard(boardId: string): Promise<number> {
    return this.store.purgePrefix(this.keys.boardPrefix(boardId));
  }

  /** Restores one entry from Postgres unless Redis has the same or a newer version (see restore.lua). */
  async restore(board: BoardRules, period: string, e: { userId: string; name: string; region: string; score: number; version: number; member: string | null; metadata: string | undefined }): Promise<boolean> {
    const k = this.keys;
    const p = k.boardPeriod(board.id, period);
    const keys = [p.view('GLOBAL'), p.versions, p.members, p.metadata, k.names, k.regions];
    if (e.region !== 'GLOBAL') keys.push(p.view(e.region));
    const stored = storedOf(board.order, e.score);
    // An entry persisted before members were (or a shared-tie board's) orders by user id.
    const member = board.tieBreak === 'earliest' ? (e.member ?? `0000000000000000|${e.userId}`) : e.userId;
    const args = [e.userId, e.name, stored, member, String(e.version), e.metadata ?? '', this.store.keys.topChanged, topChangePrefix(this.project, board.id, period), e.region];
    return decodeAnswer('restore', await this.store.conn.runScript(SCRIPTS.restore, keys, args)).status === 'restored';
  }

  /** Up to `limit` rows of a view in board order, from the start or strictly after `after`. */
  async page(board: BoardRules, period: string, view: string, limit: number, after: BoardKey | undefined) {
    const p = this.keys.boardPeriod(board.id, period);
    const a = decodeAnswer(
      'page',
      await this.store.conn.runScript(SCRIPTS.page, [p.view(view), this.keys.names, p.metadata], [String(limit), after?.stored ?? '', after?.member ?? '']),
    );
    return { total: num(a, 'total'), start: num(a, 'start'), beforeCursor: num(a, 'before_cursor'), rows: boardRows(a, 'rows') };
  }

  /** For each key, players ahead of it (by the ties) and with a strictly worse score on this shard's view. */
  async before(board: BoardRules, period: string, view: string, keys: readonly BoardKey[]) {
    const p = this.keys.boardPeriod(board.id, period);
    const a = decodeAnswer(
      'before',
      await this.store.conn.runScript(SCRIPTS.before, [p.view(view)], [board.tieBreak, ...keys.flatMap((k) => [k.stored, k.member])]),
    );
    return { total: num(a, 'total'), ahead: nums(a, 'ahead'), worse: nums(a, 'worse') };
  }

  /** The listed players that are on this shard's view, with their places. */
  async find(board: BoardRules, period: string, view: string, userIds: readonly string[]): Promise<{ total: number; found: FoundEntry[] }> {
    const p = this.keys.boardPeriod(board.id, period);
    const a = decodeAnswer(
      'find',
      await this.store.conn.runScript(SCRIPTS.find, [p.view(view), this.keys.names, p.metadata, p.members, this.keys.regions], [board.tieBreak, ...userIds]),
    );
    const raw = a.fields.found;
    const found: FoundEntry[] = [];
    if (Array.isArray(raw)) {
      for (let i = 0; i + 7 < raw.length; i += 8) {
        found.push({
          user_id: String(raw[i]),
          member: String(raw[i + 1]),
          stored: String(raw[i + 2]),
          name: String(raw[i + 3]),
          metadata: raw[i + 4] === '' ? undefined : String(raw[i + 4]),
          ahead: Number(raw[i + 5]),
          worse: Number(raw[i + 6]),
          region: String(raw[i + 7]),
        });
      }
    }
    return { total: num(a, 'total'), found };
  }

  /** The rows just above and below a key on this shard's view (the key's own member left out). */
  async around(board: BoardRules, period: string, view: string, key: BoardKey, range: number) {
    const p = this.keys.boardPeriod(board.id, period);
    const a = decodeAnswer(
      'around',
      await this.store.conn.runScript(SCRIPTS.around, [p.view(view), this.keys.names, p.metadata], [board.tieBreak, key.stored, key.member, String(range)]),
    );
    return {
      position: num(a, 'position'),
      ahead: num(a, 'before'),
      above: boardRows(a, 'above'),
      below: boardRows(a, 'below'),
      firstAboveAhead: num(a, 'first_above_before'),
    };
  }
}
