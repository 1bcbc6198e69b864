/**
 * A player's score events from Postgres (the durable copy the workers
 * write), of one project, in its row scope (PgPools.inScope). This is the
 * dashboard path: it never reads Redis.
 */
import { ALL_TIME, MAIN_BOARD, type ProjectRef } from '@lb/common/contracts';
import { type PgPools } from '@lb/common/platform';

export interface HistoryEvent {
  version: number;
  op: string;
  delta: number;
  score: number;
  region: string;
  ts: string;
  request_id: string | null;
}

interface Row {
  version: string;
  op: string;
  delta: string;
  score: string;
  region: string;
  ts: Date;
  request_id: string | null;
}

/** A named board's event: also its period and metadata. */
export interface BoardHistoryEvent extends HistoryEvent {
  board: string;
  period: string;
  metadata: unknown;
}

/** Where a page of a board's history stops: events strictly older than this (ts, period, version). */
export interface BoardHistoryBefore {
  tsMs: number;
  period: string;
  version: number;
}

export class HistoryRepo {
  constructor(private readonly pools: PgPools) {}

  /**
   * The board `main`'s events (period `all`; sql/007 moved them into the
   * board tables), newest first, `limit` of them, with versions below `before` when
   * given. A player's events live on one shard, which is not known from the
   * id alone: one indexed lookup per database, in parallel.
   */
  async events(project: ProjectRef, userId: string, limit: number, before: number | undefined): Promise<HistoryEvent[]> {
    const results = await Promise.all(
      this.pools.distinct().map(({ shardId }) =>
        this.pools.inScope(shardId, project, (c) => c.query<Row>(
          `SELECT version, op, delta, score, region, ts, request_id FROM board_score_events
           WHERE board = $1 AND period = $2 AND user_id = $3 AND ($4::bigint IS NULL OR version < $4::bigint)
           ORDER BY version DESC LIMIT $5`,
          [MAIN_BOARD, ALL_TIME, userId, before ?? null, limit],
        )),
      ),
    );
    const rows = results.flatMap((r) => r.rows);
    rows.sort((a, b) => Number(b.version) - Number(a.version));
    return rows.slice(0, limit).map((r) => ({
      version: Number(r.version),
      op: r.op,
      delta: Number(r.delta),
      score: Number(r.score),
      region: r.region,
      ts: r.ts.toISOString(),
      request_id: r.request_id,
    }));
  }

  /**
   * A player's events on one named board, newest first (by time, then
   * period and version), `limit` of them, older than `before` when given.
   */
  async boardEvents(project: ProjectRef, userId: string, board: string, limit: number, before: BoardHistoryBefore | undefined): Promise<BoardHistoryEvent[]> {
    const results = await Promise.all(
      this.pools.distinct().map(({ shardId }) =>
        this.pools.inScope(shardId, project, (c) =>
          c.query<Row & { board: string; period: string; metadata: unknown }>(
            `SELECT board, period, version, op, delta, score, region, metadata, ts, request_id FROM board_score_events
             WHERE user_id = $1 AND board = $2
               AND ($3::timestamptz IS NULL OR (ts, period, version) < ($3::timestamptz, $4::text, $5::bigint))
             ORDER BY ts DESC, period DESC, version DESC LIMIT $6`,
            [userId, board, before ? new Date(before.tsMs) : null, before?.period ?? null, before?.version ?? null, limit],
          ),
        ),
      ),
    );
    const rows = results.flatMap((r) => r.rows);
    rows.sort((a, b) => b.ts.getTime() - a.ts.getTime() || (a.period < b.period ? 1 : a.period > b.period ? -1 : 0) || Number(b.version) - Number(a.version));
    return rows.slice(0, limit).map((r) => ({
      board: r.board,
      period: r.period,
      version: Number(r.version),
      op: r.op,
      delta: Number(r.delta),
      score: Number(r.score),
      region: r.region,
      metadata: r.metadata ?? null,
      ts: r.ts.toISOString(),
      request_id: r.request_id,
    }));
  }
}
