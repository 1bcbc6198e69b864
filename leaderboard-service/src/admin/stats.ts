/**
 * GET /admin/stats: what the operator panel of the live page shows, per
 * shard: its backlog (events written and not yet persisted to Postgres: the
 * outbox's HLEN, what `queue_full` is checked against), its relay lag (age
 * of the oldest event not yet handed to the queue), and the write rate this
 * replica accepted for it recently (its own counter, {@link RecentRate}).
 * Cheap enough to poll every second or two: two commands per shard.
 */
import type { ShardStores } from '../redis/shard-store.js';

// The counter lives beside the shard store that counts (no import circle); tests and callers may take it from here.
export { RecentRate } from '../redis/recent-rate.js';

export interface ShardStatsRow {
  shard: string;
  /** Outbox entries (null when the shard did not answer). */
  backlog: number | null;
  /** ms since the oldest not-yet-relayed event was written; 0 when none; null when the shard did not answer. */
  lag_ms: number | null;
  /** Writes this replica applied to the shard, per second, over the window. */
  writes_per_s: number;
  /** Set when the shard did not answer. */
  error?: string;
}

export interface AdminStats {
  instance: string;
  at: string;
  write_rate: { window_s: number; per_s: number };
  shards: ShardStatsRow[];
}

export async function adminStats(stores: ShardStores, instance: string, now: () => number = Date.now): Promise<AdminStats> {
  const shards = await Promise.all(
    stores.all().map(async (store): Promise<ShardStatsRow> => {
      const writes_per_s = round(store.writeRate.perSecond());
      try {
        const { backlog, oldestUnrelayedMs } = await store.backlog();
        return { shard: store.shard.id, backlog, lag_ms: oldestUnrelayedMs === null ? 0 : Math.max(0, now() - oldestUnrelayedMs), writes_per_s };
      } catch (e) {
        return { shard: store.shard.id, backlog: null, lag_ms: null, writes_per_s, error: (e as Error).message };
      }
    }),
  );
  const windowS = stores.all()[0]?.writeRate.windowS ?? 10;
  return {
    instance,
    at: new Date(now()).toISOString(),
    write_rate: { window_s: windowS, per_s: round(shards.reduce((a, s) => a + s.writes_per_s, 0)) },
    shards,
  };
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
