/**
 * Rebuilds a shard's Redis (sorted sets, user hashes, names) from its
 * Postgres copy after Redis data loss. Versions are restored too, so the
 * events of later writes still apply in order downstream.
 */
import pg from 'pg';
import { ALL_TIME, GLOBAL, MAIN_BOARD, type Board, type ShardRouter } from '@lb/common/contracts';
import { BoardStore } from '../redis/board-store.js';
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
 * Streams the board `main`'s rows of the shard's database (`board_scores`,
 * period `all`, see sql/007) in user-id order
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
        `SELECT user_id, name, region, score, version, updated_at FROM board_scores
         WHERE board = $1 AND period = $2 AND user_id > $3 ORDER BY user_id LIMIT $4`,
        [MAIN_BOARD, ALL_TIME, after, PAGE],
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

interface BoardRow {
  board: string;
  period: string;
  user_id: string;
  name: string;
  region: string;
  score: string;
  version: string;
  metadata: unknown;
  member: string | null;
}

/**
 * Restores the named boards' open periods on a shard from `board_scores`
 * (the board `main`'s rows there are {@link rebuildShard}'s):
 * every entry of a live board whose period is not closed (a closed period
 * is read from its archive), homed on this shard, at its latest version,
 * with its metadata and its place among equal scores.
 */
export async function rebuildBoards(
  router: ShardRouter,
  store: ShardStore,
  boards: readonly Board[],
  isClosed: (board: string, period: string) => Promise<boolean>,
  onProgress?: (r: RebuildResult) => void,
): Promise<RebuildResult> {
  const shard = store.shard;
  const live = new Map(boards.filter((b) => b.deletedAt === null && b.id !== MAIN_BOARD).map((b) => [b.id, b]));
  const target = new BoardStore(store);
  const closed = new Map<string, boolean>();
  const client = new pg.Client({ connectionString: shard.postgres });
  await client.connect();
  const result: RebuildResult = { shard: shard.id, scanned: 0, restored: 0, skipped: 0 };
  try {
    let after: [string, string, string] = ['', '', ''];
    for (;;) {
      const { rows } = await client.query<BoardRow>(
        `SELECT board, period, user_id, name, region, score, version, metadata, member FROM board_scores
         WHERE (board, period, user_id) > ($1, $2, $3) ORDER BY board, period, user_id LIMIT $4`,
        [...after, PAGE],
      );
      if (rows.length === 0) break;
      const last = rows[rows.length - 1]!;
      after = [last.board, last.period, last.user_id];
      result.scanned += rows.length;
      for (const r of rows) {
        const board = live.get(r.board);
        const key = `${r.board}\u0000${r.period}`;
        if (!closed.has(key)) closed.set(key, await isClosed(r.board, r.period));
        if (!board || closed.get(key) || router.homeShard(r.user_id, r.region).id !== shard.id) continue;
        const ok = await target.restore(board, r.period, {
          userId: r.user_id,
          name: r.name,
          region: r.region,
          score: Number(r.score),
          version: Number(r.version),
          member: r.member,
          metadata: r.metadata === null || r.metadata === undefined ? undefined : JSON.stringify(r.metadata),
        });
        if (ok) result.restored++;
        else result.skipped++;
      }
      onProgress?.(result);
    }
  } finally {
    await client.end();
  }
  return result;
}
