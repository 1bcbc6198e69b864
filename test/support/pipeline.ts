/**
 * Helpers for tests of the write-behind pipeline: queue drain checks and the
 * Redis-vs-Postgres comparison.
 */
import pg from 'pg';
import type { TestService } from '../../leaderboard-service/test/support/service.js';
import { mainEntry } from './main-entry.js';

/** True when no shard has events left to persist (outbox empty, queue idle). */
export async function drained(svc: TestService): Promise<boolean> {
  for (const store of svc.deps.stores.all()) {
    if ((await store.client.hLen(store.keys.outbox)) > 0) return false;
    const c = await svc.deps.relays.get(store.shard.id).queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    if (c.waiting! + c.active! + c.delayed! + c.prioritized! > 0) return false;
  }
  return true;
}

export async function failedJobs(svc: TestService): Promise<number> {
  let n = 0;
  for (const r of svc.deps.relays.all()) n += await r.queue.getFailedCount();
  return n;
}

export interface Mismatch {
  user_id: string;
  redis: unknown;
  postgres: unknown;
}

/**
 * Compares every given player's Redis hash with the Postgres row and event
 * log on the player's home shard: same score and version, and one event per
 * version 1..version.
 */
export async function compareRedisWithPostgres(svc: TestService, players: { user_id: string; region: string }[]): Promise<Mismatch[]> {
  const mismatches: Mismatch[] = [];
  const clients = new Map<string, pg.Client>();
  try {
    for (const p of players) {
      const shard = svc.deps.router.homeShard(p.user_id, p.region);
      let c = clients.get(shard.postgres);
      if (!c) {
        c = new pg.Client({ connectionString: shard.postgres });
        await c.connect();
        clients.set(shard.postgres, c);
      }
      const store = svc.deps.stores.get(shard.id);
      const e = await mainEntry(store.client, store.keys, p.user_id);
      const redis = { score: e.score, version: e.version };
      const m = await playerMismatch(c, p.user_id, redis);
      if (m) mismatches.push(m);
    }
  } finally {
    for (const c of clients.values()) await c.end();
  }
  return mismatches;
}

/**
 * One player's Redis state against Postgres: the same score and version in
 * `leaderboard`, and `score_events` holding versions 1..version once each.
 */
export async function playerMismatch(
  db: pg.Client | pg.Pool,
  userId: string,
  redis: { score: number | null; version: number | null },
): Promise<Mismatch | undefined> {
  const row = (await db.query('SELECT score, version FROM leaderboard WHERE user_id = $1', [userId])).rows[0];
  const ev = (
    await db.query(
      `SELECT count(*)::int AS n, count(DISTINCT version)::int AS d,
              coalesce(min(version), 0)::int AS min, coalesce(max(version), 0)::int AS max
         FROM score_events WHERE user_id = $1`,
      [userId],
    )
  ).rows[0] as { n: number; d: number; min: number; max: number };
  const postgres = { score: row ? Number(row.score) : null, version: row ? Number(row.version) : null, events: ev };
  const v = redis.version ?? 0;
  const ok =
    redis.score === postgres.score && redis.version === postgres.version && ev.n === v && ev.d === v && ev.max === v && (v === 0 || ev.min === 1);
  return ok ? undefined : { user_id: userId, redis, postgres };
}
