/**
 * Rebuilds a shard's Redis (sorted sets, user hashes, names) from its
 * Postgres copy after Redis data loss. Versions are restored too, so the
 * events of later writes still apply in order downstream.
 */
import pg from 'pg';
import { GLOBAL, type ShardRouter } from '@lb/common';
import type { ShardStore } from '../redis/shard-store.js';

interface Row {
  user_id: string;
  name: string;
  region: string;
  score: string;
  version: string;
  updated_at: Date;
}

export interface RebuildResult {
  shard: string;
  scanned: number;
  restored: number;
  skipped: number;
}

const PAGE = 5000;

/**
 * Streams the `leaderboard` table of the shard's database in user-id order
 * (keyset pagination), keeps the players homed on this shard (a database may
 * serve several shards), and restores each one atomically.
 */
export async function rebuildShard(router: ShardRouter, store: ShardStore, onProgress?: (r: RebuildResult) => void): Promise<RebuildResult> {
  const shard = store.shard;
  const client = new pg.Client({ connectionString: shard.postgres });
  await client.connect();
  const result: RebuildResult = { shard: shard.id, scanned: 0, restored: 0, skipped: 0 };
  try {
    let after = '';
    for (;;) {
      const { rows } = await client.query<Row>(
        `SELECT user_id, name, region, score, version, updated_at FROM leaderboard
         WHERE user_id > $1 ORDER BY user_id LIMIT $2`,
        [after, PAGE],
      );
      if (rows.length === 0) break;
      after = rows[rows.length - 1]!.user_id;
      const mine = rows.filter((r) => router.homeShard(r.user_id, r.region).id === shard.id);
      const applied = await Promise.all(
        mine.map((r) =>
          store.restore({
            userId: r.user_id,
            name: r.name,
            region: r.region,
            regionalBoard: r.region === GLOBAL ? undefined : r.region,
            score: Number(r.score),
            version: Number(r.version),
            updatedAtMs: r.updated_at.getTime(),
          }),
        ),
      );
      result.scanned += rows.length;
      for (const a of applied) {
        if (a) result.restored++;
        else result.skipped++;
      }
      onProgress?.(result);
    }
  } finally {
    await client.end();
  }
  return result;
}
