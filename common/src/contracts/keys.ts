/**
 * Every Redis key name and queue name of the platform, in one place.
 *
 * All keys of one shard carry the shard id as a hash tag (`lb:{na}:...`), so a
 * script that touches several of them stays in one slot, also under Redis
 * Cluster. Tests pass their own prefix to stay isolated.
 */

export const DEFAULT_KEY_PREFIX = 'lb';

export interface ShardKeys {
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
  /** Hash of events written to Redis but not yet confirmed on the queue (the outbox). */
  readonly outbox: string;
  /** Sorted set of the outbox entries not yet enqueued, by time written: what the shard's relay takes from. */
  readonly outboxIndex: string;
  /** The shard's relay lease (string: the holding replica's relay id, expiring): one relay sends the shard's envelopes. */
  readonly relayLease: string;
  /** Token bucket (hash: tokens, ts) of a player's or a region's writes, kept by the write script. */
  bucket(kind: 'user' | 'region', id: string): string;
  /** Key prefix for rate-limiter-flexible counters of this shard (login throttling). */
  readonly rateLimitPrefix: string;
  /** Pub/sub channel: the name of a board whose first entries (or size) a write changed. */
  readonly topChanged: string;
  /** The layout version of this shard's keys (leaderboard-service recovery/layout.ts). */
  readonly layout: string;
  /**
   * The board `main`'s keys before it ran on the board engine, read only
   * by the conversion (recovery/layout.ts): a sorted set per view and a
   * hash per player (name, region, score, version, updated_at).
   */
  readonly before: { view(view: string): string; readonly userPattern: string };
  /** Prefix of every key of a board (all its periods) on this shard. */
  boardPrefix(boardId: string): string;
  /** The keys of one period of a board on this shard (see lua/includes/board.lua). */
  boardPeriod(boardId: string, period: string): BoardPeriodKeys;
  /** Live pushes of the channels kept on this shard (leaderboard-service live/). */
  readonly live: LiveKeys;
}

/**
 * Live pushes (leaderboard-service live/): the nchan channels whose
 * registration this shard keeps, and the replicas that publish them.
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

/** Key names of one shard. */
export function shardKeys(shardId: string, prefix: string = DEFAULT_KEY_PREFIX): ShardKeys {
  const base = `${prefix}:{${shardId}}`;
  return {
    names: `${base}:names`,
    regions: `${base}:regions`,
    idempotency: (userId, board, key) => (board === 'main' ? `${base}:idem:${userId}:${key}` : `${base}:idem:${userId}:${board}/${key}`),
    outbox: `${base}:outbox`,
    outboxIndex: `${base}:outbox:index`,
    relayLease: `${base}:relay:lease`,
    bucket: (kind, id) => `${base}:bucket:${kind}:${id}`,
    rateLimitPrefix: `${base}:rl`,
    topChanged: `${base}:top-changed`,
    layout: `${base}:layout`,
    before: { view: (v) => `${base}:board:${v}`, userPattern: `${base}:user:*` },
    boardPrefix: (boardId) => `${base}:b:${boardId}:`,
    boardPeriod: (boardId, period) => {
      const p = `${base}:b:${boardId}:${period}`;
      return { view: (v) => `${p}:z:${v}`, versions: `${p}:v`, members: `${p}:m`, metadata: `${p}:meta`, closed: `${p}:closed` };
    },
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
