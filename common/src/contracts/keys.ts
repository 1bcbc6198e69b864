/**
 * Every Redis key name and queue name of the platform, in one place.
 *
 * All keys of one shard carry the shard id as a hash tag (`lb:{na}:...`), so a
 * script that touches several of them stays in one slot, also under Redis
 * Cluster. Tests pass their own prefix to stay isolated.
 *
 * Two kinds of keys live on a shard:
 * - the shard's own ({@link ShardKeys}): what protects or serves the shard as
 *   a whole, whichever project wrote there (the outbox and its relay, the
 *   per-region token buckets, the top-changed channel, the layout marker,
 *   the live channels' registry);
 * - a project's ({@link ProjectKeys}, `shardKeys(...).project(p)`): its
 *   players' names and regions, idempotency records, per-player buckets,
 *   login counters and boards. Their names carry the project after the hash
 *   tag, `lb:{na}:p:<tenant>/<project>:...` (tenancy.ts `projectScope`), so
 *   `alice` of one project and `alice` of another are two players even on
 *   the same shard. This module is the only place that spells them.
 */
import { DEFAULT_PROJECT, projectScope, type ProjectRef } from './tenancy.js';

export const DEFAULT_KEY_PREFIX = 'lb';

/** The keys of one shard that belong to no project. */
export interface ShardKeys {
  /** Hash of events written to Redis but not yet confirmed on the queue (the outbox). */
  readonly outbox: string;
  /** Sorted set of the outbox entries not yet enqueued, by time written: what the shard's relay takes from. */
  readonly outboxIndex: string;
  /**
   * Hash `<tenant>/<project>` -> how many of the outbox's events are that
   * project's (kept by the write script and the outbox settle script): what
   * a project's backlog share is checked against.
   */
  readonly outboxProjects: string;
  /** The shard's relay lease (string: the holding replica's relay id, expiring): one relay sends the shard's envelopes. */
  readonly relayLease: string;
  /** Token bucket (hash: tokens, ts) of a region's writes (every project's: it protects the shard), kept by the write script. */
  regionBucket(region: string): string;
  /** Pub/sub channel: `<tenant>/<project>/<board>/<period>/<view>` of a view whose first entries (or size) a write changed. */
  readonly topChanged: string;
  /** The layout version of this shard's keys (leaderboard-service recovery/layout.ts). */
  readonly layout: string;
  /**
   * The board `main`'s keys before it ran on the board engine (layout 1),
   * read only by the conversion (recovery/layout.ts): a sorted set per view
   * and a hash per player (name, region, score, version, updated_at).
   */
  readonly before: { view(view: string): string; readonly userPattern: string };
  /**
   * Layout 2 (before tenancy): the keys of the one project there was, read
   * only by the conversion (recovery/layout.ts), which renames each into
   * the default project's ({@link upgradedKeyName}).
   */
  readonly legacy: ProjectKeys;
  /** Every key name of this shard starts with this. */
  readonly prefix: string;
  /** The keys a project owns on this shard. */
  project(p: ProjectRef): ProjectKeys;
  /** Live pushes of the channels kept on this shard (leaderboard-service live/). */
  readonly live: LiveKeys;
  /** Metered usage counted on this shard (contracts/usage.ts), by hour. */
  readonly usage: UsageKeys;
  /** A tenant's monthly quota: the count on the tenant's shard, and each shard's allowance of writes. */
  quota(tenant: string, month: string): QuotaKeys;
}

/**
 * Usage counters of one shard: per hour (`YYYYMMDDHH`, contracts/usage.ts),
 * a hash per tenant (`<project>|<kind>` -> count) and the set of tenants
 * counted; an index of the hours that have counters, for the worker's
 * rollup. The hour's keys expire (USAGE_LIVE_TTL_S) once rolled up.
 */
export interface UsageKeys {
  /** Sorted set: hour -> its start (ms epoch), every hour with counters here. */
  readonly hours: string;
  /** Set of the tenants counted in an hour. */
  tenants(hour: string): string;
  /** Hash `<project>|<kind>` -> count of one tenant's hour. */
  counts(hour: string, tenant: string): string;
}

/**
 * A tenant's quota in one month. `count` lives on the tenant's shard
 * (ShardRouter.hashShard(tenant)): hash `granted` (writes handed out to the
 * shards' allowances), `others` (the reads and streams counted), and
 * `crossed:<percent>` (a threshold already told). `allowance` lives on each
 * shard: the writes that shard may still accept without asking.
 */
export interface QuotaKeys {
  readonly count: string;
  readonly allowance: string;
}

/** The keys of one project on one shard. */
export interface ProjectKeys {
  /** Every key of the project on this shard starts with this (and only its keys do). */
  readonly prefix: string;
  /** Hash user_id -> name of the players homed here, read with board rows. */
  readonly names: string;
  /** Hash user_id -> home region of the players homed here (the original rank answer's `region`). */
  readonly regions: string;
  /**
   * Stored response of an idempotent write to a board, 24 h. The board
   * `main`'s records keep the name they had before main ran on the board
   * engine (no board in it), so a retry across that upgrade finds its record.
   */
  idempotency(userId: string, board: string, key: string): string;
  /** Token bucket (hash: tokens, ts) of a player's writes, kept by the write script. */
  userBucket(userId: string): string;
  /** Token bucket (hash: tokens, ts) of the project's writes on this shard (its plan's writes_per_s), kept by the write script. */
  readonly writeBucket: string;
  /** Key prefix for rate-limiter-flexible counters of this project on this shard (login throttling, the project's reads). */
  readonly rateLimitPrefix: string;
  /** Prefix of every key of a board (all its periods). */
  boardPrefix(boardId: string): string;
  /** The keys of one period of a board (see lua/includes/board.lua). */
  boardPeriod(boardId: string, period: string): BoardPeriodKeys;
}

/**
 * Live pushes (leaderboard-service live/): the nchan channels whose
 * registration this shard keeps, and the replicas that publish them. The
 * registry is the shard's (its channels are dealt out among the replicas
 * as one set); each channel id carries its project (live/channels.ts), so
 * so do its entries and its `last`/`first` keys.
 */
export interface LiveKeys {
  /** Sorted set: replica member id -> its last heartbeat (ms epoch). The channels here are dealt out among them. */
  readonly members: string;
  /** Sorted set: channel id -> when it was opened or last known to have subscribers (ms epoch). */
  readonly channels: string;
  /** Hash: channel id -> what the channel shows (JSON), for the replica that publishes it. */
  readonly specs: string;
  /** The hash of the content last published to a channel: a change is published once, whoever computes it. */
  last(channel: string): string;
  /** Held (briefly) by the replica publishing a new channel's first message. */
  first(channel: string): string;
}

/** One period of a board on one shard. */
export interface BoardPeriodKeys {
  /** Sorted set of a view: GLOBAL (this shard's partition) or a region served here. */
  view(view: string): string;
  /** Hash user_id -> version of the entry. */
  readonly versions: string;
  /** Hash user_id -> member in the views (earliest-tie boards). */
  readonly members: string;
  /** Hash user_id -> metadata JSON. */
  readonly metadata: string;
  /** Set when the period is closed: its writes are refused from then on. */
  readonly closed: string;
}

/** A project's keys under `base` (the one spelling of their names: layout 2 had them under the shard's base, layout 3 under the project's). */
function projectKeysAt(base: string): ProjectKeys {
  return {
    prefix: `${base}:`,
    names: `${base}:names`,
    regions: `${base}:regions`,
    idempotency: (userId, board, key) => (board === 'main' ? `${base}:idem:${userId}:${key}` : `${base}:idem:${userId}:${board}/${key}`),
    userBucket: (userId) => `${base}:bucket:user:${userId}`,
    writeBucket: `${base}:bucket:writes`,
    rateLimitPrefix: `${base}:rl`,
    boardPrefix: (boardId) => `${base}:b:${boardId}:`,
    boardPeriod: (boardId, period) => {
      const p = `${base}:b:${boardId}:${period}`;
      return { view: (v) => `${p}:z:${v}`, versions: `${p}:v`, members: `${p}:m`, metadata: `${p}:meta`, closed: `${p}:closed` };
    },
  };
}

/** The part of a project key's name after its project's base, by kind: what {@link upgradedKeyName} recognises. */
const PROJECT_KEY_TAIL = /^(?:names|regions|idem:.+|bucket:user:.+|rl:.+|b:.+)$/;

/**
 * The name a key of layout 2 (before tenancy: project keys had no project
 * in their names) has in layout 3: the same key of the default project.
 * Undefined for any other key of the shard (the shard's own, layout 3's
 * `p:...`, another prefix's): what the conversion (recovery/layout.ts)
 * leaves where it is.
 */
export function upgradedKeyName(keys: ShardKeys, name: string): string | undefined {
  if (!name.startsWith(keys.prefix)) return undefined;
  const tail = name.slice(keys.prefix.length);
  return PROJECT_KEY_TAIL.test(tail) ? keys.project(DEFAULT_PROJECT).prefix + tail : undefined;
}

/** Key names of one shard. */
export function shardKeys(shardId: string, prefix: string = DEFAULT_KEY_PREFIX): ShardKeys {
  const base = `${prefix}:{${shardId}}`;
  return {
    prefix: `${base}:`,
    outbox: `${base}:outbox`,
    outboxIndex: `${base}:outbox:index`,
    outboxProjects: `${base}:outbox:projects`,
    relayLease: `${base}:relay:lease`,
    regionBucket: (region) => `${base}:bucket:region:${region}`,
    topChanged: `${base}:top-changed`,
    layout: `${base}:layout`,
    before: { view: (v) => `${base}:board:${v}`, userPattern: `${base}:user:*` },
    legacy: projectKeysAt(base),
    project: (p) => projectKeysAt(`${base}:p:${projectScope(p)}`),
    usage: {
      hours: `${base}:usage:hours`,
      tenants: (hour) => `${base}:usage:${hour}:tenants`,
      counts: (hour, tenant) => `${base}:usage:${hour}:t:${tenant}`,
    },
    quota: (tenant, month) => ({ count: `${base}:quota:${tenant}:${month}:count`, allowance: `${base}:quota:${tenant}:${month}:allowance` }),
    live: {
      members: `${base}:live:members`,
      channels: `${base}:live:channels`,
      specs: `${base}:live:specs`,
      last: (channel) => `${base}:live:last:${channel}`,
      first: (channel) => `${base}:live:first:${channel}`,
    },
  };
}

/**
 * BullMQ queue name of a shard's score events. BullMQ queue names cannot
 * contain ':'; shard ids never do (see topology validation).
 */
export function scoreQueueName(shardId: string, prefix: string = DEFAULT_KEY_PREFIX): string {
  return `${prefix}-scores-${shardId}`;
}
