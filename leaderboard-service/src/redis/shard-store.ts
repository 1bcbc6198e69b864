/**
 * The data layer of one shard's Redis: typed methods over its connection
 * (connection.ts) and its scripts (scripts.ts), each answer decoded by name
 * (contract.ts). Every failure to reach the shard is StoreUnavailable.
 */
import { shardKeys, type NamedEntry, type ShardDef, type ShardKeys } from '@lb/common/contracts';
import { type CallMetrics, type Logger } from '@lb/common/platform';
import { ShardConnection, type LimiterClient } from './connection.js';
import { RecentRate } from './recent-rate.js';
import { decodeAnswer, fromStored, num, packArgs, rows, str, toStored, type FieldValue } from './contract.js';
import { SCRIPTS } from './scripts.js';
import { watchTopChanges, type TopChangeWatch } from './subscriber.js';

export type { TopChangeWatch } from './subscriber.js';

/**
 * How many entries of each board the top-page caches hold (top-cache.ts):
 * writes publish a change within this many entries of a shard's board. A
 * constant, not a setting, so every replica publishes what every other one
 * caches.
 */
export const TOP_CACHE_DEPTH = 100;

/** A token bucket: `capacity` writes, refilled over `windowMs` (capacity 0 = none). */
export interface BucketSpec {
  capacity: number;
  windowMs: number;
}

/** Both buckets as the write scripts take them (lua/includes/admission.lua). */
export function packBuckets(b: { user: BucketSpec; region: BucketSpec }) {
  return { user: { capacity: b.user.capacity, window_ms: b.user.windowMs }, region: { capacity: b.region.capacity, window_ms: b.region.windowMs } };
}

export interface WriteInput {
  op: 'register' | 'create' | 'update' | 'add';
  value: number;
  userId: string;
  name: string;
  /** Home region, or GLOBAL for GLOBAL-only players. */
  region: string;
  /** Regional board to update, undefined for GLOBAL-only players. */
  regionalBoard: string | undefined;
  nowMs: number;
  maxScore: number;
  idempotency?: { key: string; fingerprint: string; ttlS: number };
  requestId: string;
  /** Refuse with queue_full when this many events wait to be persisted (0 = no limit). */
  backlogLimit: number;
  /** The player's and the region's buckets, checked and taken from inside the script. */
  buckets: { user: BucketSpec; region: BucketSpec };
  /** The request's W3C traceparent for the event (`currentTraceparent()`; '' or absent = not traced). */
  traceparent?: string;
}

export type WriteResult =
  | {
      kind: 'ok';
      score: number;
      version: number;
      regionalRank: number | null;
      globalHigherHere: number;
      changed: boolean;
      previousScore: number;
      /** The outbox entry written with the change (undefined when nothing changed). */
      event: { id: string; json: string } | undefined;
      /** The write changed the first rows (or the size) of a board and said so on the top-changed channel. */
      topChanged: boolean;
    }
  | { kind: 'replay'; stored: string }
  | { kind: 'out_of_range'; current: number; attempted: number }
  | { kind: 'queue_full'; backlog: number }
  | { kind: 'rate_limited'; waitMs: number }
  | { kind: 'region_rate_limited'; waitMs: number };

export interface RestoredPlayer {
  userId: string;
  name: string;
  region: string;
  regionalBoard: string | undefined;
  score: number;
  version: number;
  updatedAtMs: number;
}

export interface LocateResult {
  found: boolean;
  total: number;
  score: number;
  name: string;
  region: string;
  higher: number;
  lower: number;
  position: number;
  firstAboveHigher: number;
  above: NamedEntry[];
  below: NamedEntry[];
}

export class ShardStore {
  readonly keys: ShardKeys;
  /** Writes this replica applied here (main board and named boards), for GET /admin/stats. */
  readonly writeRate = new RecentRate();
  readonly conn: ShardConnection;

  constructor(
    readonly shard: ShardDef,
    keyPrefix: string,
    private readonly log: Logger,
    timeoutMs: number,
    metrics?: CallMetrics,
  ) {
    this.keys = shardKeys(shard.id, keyPrefix);
    this.conn = new ShardConnection(shard, log, timeoutMs, metrics);
  }

  /** The node-redis client (tests and scripts read Redis through it). */
  get client() {
    return this.conn.client;
  }

  /**
   * Applies one write atomically (see write.lua). Throws StoreUnavailable
   * when the shard does not answer: `inDoubt` when the call was sent and its
   * connection dropped before the answer (the write may have been applied);
   * otherwise nothing was applied. A call not answered in time changes
   * nothing even if the shard runs it later: the script refuses to run after
   * a deadline half-way through the timeout (on the shard's clock), and
   * StoreUnavailable is what such a refusal becomes too.
   */
  async write(w: WriteInput): Promise<WriteResult> {
    const k = this.keys;
    const keys = [
      k.user(w.userId),
      k.board('GLOBAL'),
      k.names,
      k.idempotency(w.userId, w.idempotency?.key ?? ''),
      k.outbox,
      k.outboxIndex,
      k.bucket('user', w.userId),
      k.bucket('region', w.region),
    ];
    if (w.regionalBoard !== undefined) keys.push(k.board(w.regionalBoard));
    const args = packArgs({
      op: w.op,
      value: w.value,
      user_id: w.userId,
      name: w.name,
      region: w.region,
      now: String(w.nowMs),
      max_score: w.maxScore,
      fingerprint: w.idempotency?.fingerprint ?? '',
      idempotency_ttl_s: w.idempotency?.ttlS ?? 0,
      request_id: w.requestId,
      backlog_limit: w.backlogLimit,
      top_depth: TOP_CACHE_DEPTH,
      top_channel: k.topChanged,
      deadline_ms: Date.now() + Math.floor(this.conn.timeoutMs / 2),
      buckets: packBuckets(w.buckets),
      traceparent: w.traceparent ?? '',
    });
    const a = decodeAnswer('write', await this.conn.runScript(SCRIPTS.write, keys, args, true));
    switch (a.status) {
      case 'ok': {
        this.writeRate.add();
        const regional = num(a, 'regional');
        const eventId = str(a, 'event_id');
        return {
          kind: 'ok',
          score: num(a, 'score'),
          version: num(a, 'version'),
          regionalRank: regional < 0 ? null : regional,
          globalHigherHere: num(a, 'higher'),
          changed: num(a, 'changed') === 1,
          previousScore: num(a, 'previous'),
          event: eventId === '' ? undefined : { id: eventId, json: str(a, 'event') },
          topChanged: num(a, 'published') === 1,
        };
      }
      case 'replay':
        return { kind: 'replay', stored: str(a, 'stored') };
      case 'out_of_range':
        return { kind: 'out_of_range', current: num(a, 'current'), attempted: num(a, 'attempted') };
      case 'queue_full':
        return { kind: 'queue_full', backlog: num(a, 'backlog') };
      case 'rate_limited':
        return { kind: 'rate_limited', waitMs: num(a, 'wait_ms') };
      case 'region_rate_limited':
        return { kind: 'region_rate_limited', waitMs: num(a, 'wait_ms') };
      case 'expired':
        // Ran after its deadline: the shard was stalled; nothing was applied.
        throw this.conn.unavailable();
    }
  }

  /** Restores one player from Postgres unless Redis has the same or a newer version (see restore.lua). */
  async restore(p: RestoredPlayer): Promise<boolean> {
    const keys = [this.keys.user(p.userId), this.keys.board('GLOBAL'), this.keys.names];
    if (p.regionalBoard !== undefined) keys.push(this.keys.board(p.regionalBoard));
    const args = [p.userId, p.name, p.region, String(p.score), String(p.version), String(p.updatedAtMs), this.keys.topChanged];
    return decodeAnswer('restore', await this.conn.runScript(SCRIPTS.restore, keys, args)).status === 'restored';
  }

  /** Replaces an idempotency record with the full response, keeping its TTL. */
  async storeIdempotentResponse(userId: string, key: string, value: string): Promise<void> {
    await this.conn.call(() => this.conn.client.set(this.keys.idempotency(userId, key), value, { XX: true, KEEPTTL: true }));
  }

  /** The first `limit` rows of a board on this shard, with names, and its size. */
  async top(board: string, limit: number): Promise<{ total: number; rows: NamedEntry[] }> {
    const a = decodeAnswer('top', await this.conn.runScript(SCRIPTS.top, [this.keys.board(board), this.keys.names], [String(limit)]));
    return { total: num(a, 'total'), rows: rows(a, 'rows') };
  }

  /**
   * Where a player stands on a board of this shard: `score` undefined looks
   * the player up here; a given score places a player living elsewhere.
   */
  async locate(board: string, userId: string, score: number | undefined, range: number): Promise<LocateResult> {
    const a = decodeAnswer(
      'locate',
      await this.conn.runScript(
        SCRIPTS.locate,
        [this.keys.board(board), this.keys.names, this.keys.user(userId)],
        [userId, score === undefined ? '' : toStored(score), String(range)],
      ),
    );
    if (a.status === 'not_found') {
      return { found: false, total: num(a, 'total'), score: 0, name: '', region: '', higher: 0, lower: 0, position: 0, firstAboveHigher: 0, above: [], below: [] };
    }
    return {
      found: true,
      score: fromStored(a.fields.score as Exclude<FieldValue, FieldValue[]>),
      name: str(a, 'name'),
      region: str(a, 'region'),
      total: num(a, 'total'),
      higher: num(a, 'higher'),
      lower: num(a, 'lower'),
      position: num(a, 'position'),
      firstAboveHigher: num(a, 'first_above_higher'),
      above: rows(a, 'above'),
      below: rows(a, 'below'),
    };
  }

  /**
   * Takes relayed events off the outbox index (they are on the queue now).
   * They stay in the outbox itself, counted as backlog, until the worker has
   * them in Postgres.
   */
  async markQueued(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.conn.call(() => this.conn.client.zRem(this.keys.outboxIndex, ids));
  }

  /** Removes entries from the outbox and its index for good (unreadable, or already gone). */
  async dropOutbox(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.conn.call(() => this.conn.client.multi().hDel(this.keys.outbox, ids).zRem(this.keys.outboxIndex, ids).exec());
  }

  /**
   * The shard's backlog: outbox entries (written, not yet persisted; what
   * `queue_full` is checked against) and when the oldest entry not yet
   * relayed to the queue was written (ms epoch; null when there is none).
   */
  async backlog(): Promise<{ backlog: number; oldestUnrelayedMs: number | null }> {
    const [len, oldest] = await this.conn.call(() =>
      Promise.all([this.conn.client.hLen(this.keys.outbox), this.conn.client.zRangeWithScores(this.keys.outboxIndex, 0, 0)]),
    );
    return { backlog: Number(len), oldestUnrelayedMs: oldest[0] ? Number(oldest[0].score) : null };
  }

  /** Outbox entries written before `olderThanMs` (ms epoch): events a relay may have missed. */
  async staleOutbox(olderThanMs: number, limit: number): Promise<{ id: string; json: string | null }[]> {
    return this.conn.call(async () => {
      const ids = await this.conn.client.zRangeByScore(this.keys.outboxIndex, '-inf', olderThanMs, { LIMIT: { offset: 0, count: limit } });
      if (ids.length === 0) return [];
      const jsons = await this.conn.client.hmGet(this.keys.outbox, ids);
      return ids.map((id, i) => ({ id, json: (jsons[i] as string | null) ?? null }));
    });
  }

  /** A player's score from the user hash, 0 when there is none. */
  async currentScore(userId: string): Promise<number> {
    const v = await this.conn.call(() => this.conn.client.hGet(this.keys.user(userId), 'score'));
    return v === null || v === undefined ? 0 : Number(v);
  }

  /** Players on a board of this shard with a strictly higher score. */
  async countHigher(board: string, score: number): Promise<number> {
    return this.conn.call(() => this.conn.client.zCount(this.keys.board(board), '-inf', `(${toStored(score)}`));
  }

  /**
   * Removes every key of a board on this shard (all its periods), in
   * batches, without blocking the shard: SCAN and UNLINK.
   */
  async purgeBoard(boardId: string): Promise<number> {
    let removed = 0;
    let cursor = '0';
    do {
      const page = await this.conn.call(() => this.conn.client.scan(cursor, { MATCH: `${this.keys.boardPrefix(boardId)}*`, COUNT: 500 }));
      cursor = String(page.cursor);
      if (page.keys.length > 0) removed += await this.conn.call(() => this.conn.client.unlink(page.keys));
    } while (cursor !== '0');
    return removed;
  }

  /** Follows this shard's top-changed channel (see subscriber.ts). */
  watchTopChanges(onChange: (board: string) => void, onReset: () => void): TopChangeWatch {
    return watchTopChanges(this.conn, this.keys.topChanged, this.log, onChange, onReset);
  }

  ping(): Promise<void> {
    return this.conn.ping();
  }

  /** Connected and ready now (a call would be sent rather than refused at once). */
  ready(): boolean {
    return this.conn.ready();
  }

  /** The client rate-limiter-flexible counters run on (login throttling). */
  limiterClient(): LimiterClient {
    return this.conn.limiterClient();
  }
}

/** One ShardStore per shard of the topology. */
export class ShardStores {
  private readonly byId = new Map<string, ShardStore>();

  constructor(shards: readonly ShardDef[], keyPrefix: string, commandTimeoutMs: number, log: Logger, metrics?: CallMetrics) {
    for (const shard of shards) this.byId.set(shard.id, new ShardStore(shard, keyPrefix, log, commandTimeoutMs, metrics));
  }

  get(id: string): ShardStore {
    const s = this.byId.get(id);
    if (!s) throw new Error(`no store for shard ${id}`);
    return s;
  }

  all(): ShardStore[] {
    return [...this.byId.values()];
  }

  /**
   * Connects every shard. A shard that does not answer within the timeout
   * does not stop start-up: its client keeps reconnecting, its calls answer
   * 503 meanwhile, and /health names it.
   */
  async connect(log: Logger): Promise<void> {
    await Promise.all(
      this.all().map(async (s) => {
        if (!(await s.conn.connect())) log.warn('redis shard not reachable at start-up; continuing', { shard: s.shard.id, url: s.shard.redis });
      }),
    );
  }

  async close(): Promise<void> {
    await Promise.all(this.all().map((s) => s.conn.close()));
  }
}
