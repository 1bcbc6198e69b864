/**
 * Every Redis key name and queue name of the platform, in one place.
 *
 * All keys of one shard carry the shard id as a hash tag (`lb:{na}:...`), so a
 * script that touches several of them stays in one slot, also under Redis
 * Cluster. Tests pass their own prefix to stay isolated.
 */

export const DEFAULT_KEY_PREFIX = 'lb';

export interface ShardKeys {
  /** Sorted set of a board on this shard (a region it serves, or its GLOBAL partition). */
  board(board: string): string;
  /** Hash of a player homed on this shard: name, region, score, version, updated_at. */
  user(userId: string): string;
  /** Hash user_id -> name of the players homed here, read with board rows. */
  readonly names: string;
  /** Stored response of an idempotent write, 24 h. */
  idempotency(userId: string, key: string): string;
  /** Hash of events written to Redis but not yet confirmed on the queue (the outbox). */
  readonly outbox: string;
  /** Sorted set of outbox entries by time written, for the sweeper. */
  readonly outboxIndex: string;
  /** Token bucket (hash: tokens, ts) of a player's or a region's writes, kept by the write script. */
  bucket(kind: 'user' | 'region', id: string): string;
  /** Key prefix for rate-limiter-flexible counters of this shard (login throttling). */
  readonly rateLimitPrefix: string;
  /** Pub/sub channel: the name of a board whose first entries (or size) a write changed. */
  readonly topChanged: string;
  /** Prefix of every key of a named board (all its periods) on this shard; `main` keeps the keys above. */
  boardPrefix(boardId: string): string;
  /** The keys of one period of a named board on this shard (see lua/includes/board.lua). */
  boardPeriod(boardId: string, period: string): BoardPeriodKeys;
}

/** One period of a named board on one shard. */
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

/** Key names of one shard. */
export function shardKeys(shardId: string, prefix: string = DEFAULT_KEY_PREFIX): ShardKeys {
  const base = `${prefix}:{${shardId}}`;
  return {
    board: (board) => `${base}:board:${board}`,
    user: (userId) => `${base}:user:${userId}`,
    names: `${base}:names`,
    idempotency: (userId, key) => `${base}:idem:${userId}:${key}`,
    outbox: `${base}:outbox`,
    outboxIndex: `${base}:outbox:index`,
    bucket: (kind, id) => `${base}:bucket:${kind}:${id}`,
    rateLimitPrefix: `${base}:rl`,
    topChanged: `${base}:top-changed`,
    boardPrefix: (boardId) => `${base}:b:${boardId}:`,
    boardPeriod: (boardId, period) => {
      const p = `${base}:b:${boardId}:${period}`;
      return { view: (v) => `${p}:z:${v}`, versions: `${p}:v`, members: `${p}:m`, metadata: `${p}:meta`, closed: `${p}:closed` };
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
