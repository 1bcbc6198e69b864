/**
 * Closing one period of a named board, exactly once, however many workers
 * try and whichever of them dies halfway:
 *
 * 1. On every shard the period's closed flag is set: write.lua refuses
 *    any write to the period from then on (the flag and the writes are
 *    atomic with each other), so the standings read next are final.
 * 2. Every view of the period (GLOBAL and each region) is read from every
 *    shard, merged in board order and ranked by the board's tie policy
 *    (@lb/common ranking.ts, the maths the service's reads use).
 * 3. One transaction on the control-plane database inserts the period's
 *    row in period_closes (the unique key: a second closer waits on it,
 *    then finds the period closed and rolls back), its standings in
 *    period_archive and its webhook delivery. A closer that dies before the
 *    COMMIT leaves nothing, and the close job is retried.
 * 4. After the COMMIT the period's Redis keys get a time to live of
 *    keep_periods periods, and the webhook delivery is queued.
 *
 * Each project's boards are read through @lb/common's key builder
 * (`shardKeys(...).project(p)`, the keys the service writes) and ranked
 * by its order maths, as the service reads them. The worker has one Redis
 * client library, ioredis: BullMQ requires it, so the closer uses it too
 * rather than adding node-redis beside it.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type pg from 'pg';
import {
  comparePlaces,
  periodById,
  rankList,
  scoreOf,
  shardKeys,
  ShardRouter,
  userOfMember,
  type ArchivedRow,
  type Board,
  type ProjectRef,
  type Topology,
} from '@lb/common/contracts';
import { connectionFor, type BoardsRepo, type Logger, type PgPools } from '@lb/common/platform';

/** One player's place on one view at the close. */
export interface StandingRow extends ArchivedRow {
  view: string;
}

export type CloseOutcome = 'closed' | 'already_closed' | 'not_ended' | 'unknown_board';

export interface CloserDeps {
  topology: Topology;
  pools: PgPools;
  boards: BoardsRepo;
  keyPrefix: string;
  log: Logger;
  /** Called after the COMMIT with the project and the delivery id, when the board has a webhook. */
  onDelivery?: (project: ProjectRef, deliveryId: string) => Promise<void>;
  /** Test seam: runs inside the transaction after the standings were inserted, before the COMMIT. */
  beforeCommit?: () => Promise<void>;
}

const PAGE = 5000;

export class PeriodCloser {
  private readonly router: ShardRouter;
  private readonly redis = new Map<string, Redis>();

  constructor(private readonly deps: CloserDeps) {
    this.router = new ShardRouter(deps.topology);
    for (const s of deps.topology.shards) {
      const r = new Redis(connectionFor(s.redis, false) as RedisOptions);
      r.on('error', () => undefined); // reported by the failing calls
      this.redis.set(s.id, r);
    }
  }

  private get controlShard(): string {
    return this.deps.topology.shards[0]!.id;
  }

  /**
   * Closes `period` of `project`'s board `boardId` unless it is open still
   * (`now` before its end plus `graceMs`) or closed already. Its Postgres
   * rows are written in the project's row scope.
   */
  async close(project: ProjectRef, boardId: string, period: string, now: number, graceMs: number): Promise<CloseOutcome> {
    const board = (await this.deps.boards.ofProject(project)).find((b) => b.id === boardId);
    if (!board) return 'unknown_board';
    const p = periodById(board.resetRule, period);
    if (!p || p.endsAt === undefined) return 'unknown_board';
    if (now < p.endsAt + graceMs) return 'not_ended';
    const control = this.controlShard;
    const done = await this.deps.pools.inScope(control, project, (c) => c.query('SELECT 1 FROM period_closes WHERE board = $1 AND period = $2', [boardId, period]), 'close');
    if (done.rowCount === 1) return 'already_closed';

    // 1. No write lands in the period from here on.
    await Promise.all(this.deps.topology.shards.map((s) => this.redis.get(s.id)!.set(shardKeys(s.id, this.deps.keyPrefix).project(project).boardPeriod(boardId, period).closed, '1')));
    // 2. The final standings of every view.
    const rows = await this.standings(project, board, period);
    const global = rows.filter((r) => r.view === 'GLOBAL');
    // 3. Exactly once, in one transaction of the project's scope. Through
    // PgPools.inScope: an unavailable database is StoreUnavailable, which
    // the close job retries later (jobs.ts).
    const span = { startsAt: p.startsAt, endsAt: p.endsAt };
    const archived = await this.deps.pools.inScope(control, project, (client) => this.archive(client, board, span, period, rows, global.length), 'close');
    if (archived === 'already_closed') return 'already_closed';
    const deliveryId = archived.deliveryId;
    this.deps.log.info('period closed', { board: boardId, period, players: global.length });
    // 4. Keys live on for keep_periods periods; the webhook goes out.
    const ttlMs = Math.max(60_000, board.keepPeriods * (p.endsAt - (p.startsAt ?? p.endsAt)));
    await Promise.all(this.deps.topology.shards.map((s) => this.expire(s.id, project, boardId, period, ttlMs))).catch((e: unknown) =>
      this.deps.log.warn('could not set the closed period\u2019s keys to expire', { board: boardId, period, err: e as Error }),
    );
    if (deliveryId) await this.deps.onDelivery?.(project, deliveryId);
    return 'closed';
  }

  /** Step 3: the close record, the standings and the webhook delivery, in the caller's transaction. */
  private async archive(
    client: pg.PoolClient,
    board: Board,
    p: { startsAt?: number | undefined; endsAt: number },
    period: string,
    rows: StandingRow[],
    players: number,
  ): Promise<'already_closed' | { deliveryId: string | undefined }> {
    const boardId = board.id;
    const global = rows.filter((r) => r.view === 'GLOBAL');
    let deliveryId: string | undefined;
    // A second closer waits here on the first one's row, then finds it (and has written nothing).
    const claimed = await client.query(
      `INSERT INTO period_closes (board, period, starts_at, ends_at, players) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, project_id, board, period) DO NOTHING`,
      [boardId, period, p.startsAt === undefined ? null : new Date(p.startsAt), new Date(p.endsAt), players],
    );
    if (claimed.rowCount !== 1) return 'already_closed';
    for (let i = 0; i < rows.length; i += 1000) await insertStandings(client, boardId, period, rows.slice(i, i + 1000));
    if (board.webhookUrl) {
      deliveryId = `${boardId}/${period}`;
      const payload = {
        event: 'period.closed',
        board: boardId,
        period,
        starts_at: p.startsAt === undefined ? null : new Date(p.startsAt).toISOString(),
        ends_at: new Date(p.endsAt).toISOString(),
        players,
        top: global.slice(0, 100).map((r) => ({ rank: r.rank, user_id: r.user_id, name: r.name, score: r.score, metadata: r.metadata })),
      };
      await client.query(`INSERT INTO webhook_deliveries (id, board, period, url, payload) VALUES ($1, $2, $3, $4, $5)`, [deliveryId, boardId, period, board.webhookUrl, JSON.stringify(payload)]);
    }
    await this.deps.beforeCommit?.();
    return { deliveryId };
  }

  /** Every view's rows of a project's board, merged over the shards in board order and ranked. */
  async standings(project: ProjectRef, board: Board, period: string): Promise<StandingRow[]> {
    const views = ['GLOBAL', ...this.router.regions];
    const out: StandingRow[] = [];
    for (const view of views) {
      const parts = await Promise.all(this.router.shardsForBoard(view).map((s) => this.readView(s.id, project, board.id, period, view)));
      const merged = parts.flat().sort(comparePlaces);
      const ranks = rankList(board.tieBreak, merged);
      merged.forEach((r, i) => {
        out.push({ view, position: i, rank: ranks[i]!, user_id: r.user_id, name: r.name, score: scoreOf(board.order, r.stored), stored: r.stored, member: r.member, metadata: r.metadata });
      });
    }
    return out;
  }

  /** One shard's entries of a view, in board order, with names and metadata. */
  private async readView(shardId: string, project: ProjectRef, boardId: string, period: string, view: string) {
    const redis = this.redis.get(shardId)!;
    const k = shardKeys(shardId, this.deps.keyPrefix).project(project);
    const p = k.boardPeriod(boardId, period);
    const rows: { member: string; stored: string; user_id: string; name: string; metadata: unknown }[] = [];
    for (let start = 0; ; start += PAGE) {
      const page = await redis.zrange(p.view(view), String(start), String(start + PAGE - 1), 'WITHSCORES');
      if (page.length === 0) break;
      const ids: string[] = [];
      for (let i = 0; i < page.length; i += 2) ids.push(userOfMember(page[i]!));
      const [names, meta] = await Promise.all([redis.hmget(k.names, ...ids), redis.hmget(p.metadata, ...ids)]);
      ids.forEach((id, j) => {
        const m = meta[j];
        rows.push({ member: page[2 * j]!, stored: page[2 * j + 1]!, user_id: id, name: names[j] ?? '', metadata: m ? (JSON.parse(m) as unknown) : null });
      });
      if (page.length < 2 * PAGE) break;
    }
    return rows;
  }

  private async expire(shardId: string, project: ProjectRef, boardId: string, period: string, ttlMs: number): Promise<void> {
    const redis = this.redis.get(shardId)!;
    const match = `${shardKeys(shardId, this.deps.keyPrefix).project(project).boardPrefix(boardId)}${period}:*`;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', match, 'COUNT', '500');
      cursor = next;
      for (const key of keys) await redis.pexpire(key, ttlMs);
    } while (cursor !== '0');
  }

  /** Closes the Redis connections. */
  async shutdown(): Promise<void> {
    await Promise.all([...this.redis.values()].map((r) => r.quit().catch(() => r.disconnect())));
  }
}

async function insertStandings(client: { query: (q: string, v: unknown[]) => Promise<unknown> }, board: string, period: string, rows: StandingRow[]): Promise<void> {
  await client.query(
    `INSERT INTO period_archive (board, period, view, position, rank, user_id, name, score, stored, member, metadata)
     SELECT $1, $2, u.view, u.position, u.rank, u.user_id, u.name, u.score, u.stored, u.member, u.metadata::jsonb
       FROM unnest($3::text[], $4::int[], $5::int[], $6::text[], $7::text[], $8::bigint[], $9::text[], $10::text[], $11::text[])
         AS u(view, position, rank, user_id, name, score, stored, member, metadata)`,
    [
      board,
      period,
      rows.map((r) => r.view),
      rows.map((r) => r.position),
      rows.map((r) => r.rank),
      rows.map((r) => r.user_id),
      rows.map((r) => r.name),
      rows.map((r) => r.score),
      rows.map((r) => r.stored),
      rows.map((r) => r.member),
      rows.map((r) => (r.metadata === null || r.metadata === undefined ? null : JSON.stringify(r.metadata))),
    ],
  );
}
