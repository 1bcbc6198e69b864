/**
 * The data layer of one shard's Redis: typed methods over its connection
 * (connection.ts) and its scripts (scripts.ts), each answer decoded by name
 * (contract.ts). Every failure to reach the shard is StoreUnavailable.
 */
import { describeRedis, shardKeys, type ProjectRef, type ShardDef, type ShardKeys } from '@lb/common/contracts';
import { outboxSettleKeys, type CallMetrics, type Logger } from '@lb/common/platform';
import { ShardConnection, type LimiterClient } from './connection.js';
import { decodeAnswer, num, strs } from './contract.js';
import { SCRIPTS } from './scripts.js';
import { RecentRate } from './recent-rate.js';
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

/** A write's buckets: its project's (from the plan), its player's and its region's. */
export interface WriteBuckets {
  project: BucketSpec;
  user: BucketSpec;
  region: BucketSpec;
}

/** The buckets as the write script takes them (lua/includes/admission.lua). */
export function packBuckets(b: WriteBuckets) {
  const pack = (x: BucketSpec) => ({ capacity: x.capacity, window_ms: x.windowMs });
  return { project: pack(b.project), user: pack(b.user), region: pack(b.region) };
}

/** What a relay's turn found: the next events to enqueue (ids and JSON, oldest first), or another relay holding the shard. */
export type RelayTurn = { kind: 'ok'; ids: string[]; events: string[] } | { kind: 'busy'; ttlMs: number } | { kind: 'released' };

export class ShardStore {
  readonly keys: ShardKeys;
  /** Writes this replica applied here (every board), for GET /admin/stats. */
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
   * One turn of the shard's relay (lua/relay-take.lua): if this relay holds
   * the shard's relay lease or can take it, renews it for `leaseMs` and
   * answers the oldest `most` events not yet enqueued. `leaseMs` 0 gives
   * the lease up.
   */
  async relayTake(relayId: string, leaseMs: number, most: number): Promise<RelayTurn> {
    const k = this.keys;
    const a = decodeAnswer('relayTake', await this.conn.runScript(SCRIPTS.relayTake, [k.relayLease, k.outboxIndex, k.outbox], [relayId, String(leaseMs), String(most)], true));
    if (a.status === 'busy') return { kind: 'busy', ttlMs: num(a, 'ttl_ms') };
    if (a.status === 'released') return { kind: 'released' };
    return { kind: 'ok', ids: strs(a, 'ids'), events: strs(a, 'events') };
  }

  /**
   * Takes enqueued events off the outbox index (they are on the queue now).
   * They stay in the outbox itself, counted as backlog, until the worker has
   * them in Postgres.
   */
  async markQueued(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.conn.call(() => this.conn.client.zRem(this.keys.outboxIndex, [...ids]));
  }

  /** Removes entries from the outbox and its index for good (unreadable events). */
  async dropOutbox(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    decodeAnswer('outboxSettle', await this.conn.runScript(SCRIPTS.outboxSettle, outboxSettleKeys(this.keys, true), ids, true));
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

  /**
   * Removes every key whose name starts with `prefix` (a board's, a
   * project's: see @lb/common keys.ts), in batches, without blocking the
   * shard: SCAN and UNLINK. The prefixes are made of key-builder parts,
   * none of which has a glob character.
   */
  async purgePrefix(prefix: string): Promise<number> {
    let removed = 0;
    let cursor = '0';
    do {
      const page = await this.conn.call(() => this.conn.client.scan(cursor, { MATCH: `${prefix}*`, COUNT: 500 }));
      cursor = String(page.cursor);
      if (page.keys.length > 0) removed += await this.conn.call(() => this.conn.client.unlink(page.keys));
    } while (cursor !== '0');
    return removed;
  }

  /** Removes every key of a project on this shard (a deleted project's data). */
  purgeProject(project: ProjectRef): Promise<number> {
    return this.purgePrefix(this.keys.project(project).prefix);
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
        if (!(await s.conn.connect())) log.warn('redis shard not reachable at start-up; continuing', { shard: s.shard.id, redis: describeRedis(s.shard.redis) });
      }),
    );
  }

  async close(): Promise<void> {
    await Promise.all(this.all().map((s) => s.conn.close()));
  }
}
