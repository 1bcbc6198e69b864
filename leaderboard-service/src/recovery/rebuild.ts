/**
 * Rebuilds a shard's Redis for one project (every board's views, versions, members,
 * metadata, names and home regions) from its Postgres copy after Redis data
 * loss. Versions are restored too, so the events of later writes still
 * apply in order downstream.
 */
import { MAIN_BOARD, type Board, type ProjectRef, type ShardRouter } from '@lb/common/contracts';
import { MAIN_DEFAULT } from '../boards/catalog.js';
import type { PgPools } from '@lb/common/platform';
import { BoardStore } from '../redis/board-store.js';
import type { ShardStore } from '../redis/shard-store.js';

export interface RebuildResult {
  shard: string;
  scanned: number;
  restored: number;
  skipped: number;
}

const PAGE = 5000;

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
 * Restores one project's boards' open periods on a shard from
 * `board_scores` (`main` included, period `all`): every entry of a live
 * board (`boards`: the project's) whose period is not closed (a closed
 * period is read from its archive), homed on this shard, at its latest
 * version, with its metadata and its place among equal scores. Streamed in
 * (board, period, user id) order by keyset pagination, each page in the
 * project's row scope; a database may serve several shards.
 */
export async function rebuildShard(
  router: ShardRouter,
  store: ShardStore,
  pools: PgPools,
  /** The project whose boards these are: the entries are restored into its keys. */
  project: ProjectRef,
  boards: readonly Board[],
  isClosed: (board: string, period: string) => Promise<boolean>,
  onProgress?: (r: RebuildResult) => void,
): Promise<RebuildResult> {
  const shard = store.shard;
  const live = new Map(boards.filter((b) => b.deletedAt === null).map((b) => [b.id, b]));
  // A project that never changed its `main` has no row for it: the catalog's default is its definition.
  if (!boards.some((b) => b.id === MAIN_BOARD)) live.set(MAIN_BOARD, MAIN_DEFAULT);
  const target = new BoardStore(store, project);
  const closed = new Map<string, boolean>();
  const result: RebuildResult = { shard: shard.id, scanned: 0, restored: 0, skipped: 0 };
  let after: [string, string, string] = ['', '', ''];
  for (;;) {
    const { rows } = await pools.inScope(shard.id, project, (c) =>
      c.query<BoardRow>(
        `SELECT board, period, user_id, name, region, score, version, metadata, member FROM board_scores
         WHERE (board, period, user_id) > ($1, $2, $3) ORDER BY board, period, user_id LIMIT $4`,
        [...after, PAGE],
      ),
    'rebuild');
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
  return result;
}
