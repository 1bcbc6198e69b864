/**
 * Closed periods of named boards, from the control-plane database: their
 * list and their final standings, as the worker's close wrote them
 * (period_closes, period_archive). Every row keeps the place it had in
 * Redis (stored score and member, position) and its rank, so a read of an
 * archived period answers what the live board answered before the close.
 * Every read is of one project, in its row scope (PgPools.inScope).
 */
import type { BoardKey } from '../redis/board-store.js';
import { projectScope, type ArchivedRow, type ProjectRef } from '@lb/common/contracts';
import type { PgPools } from '@lb/common/platform';

export type { ArchivedRow };

export interface ClosedPeriod {
  period: string;
  starts_at: string | null;
  ends_at: string | null;
  players: number;
}

interface Row {
  position: number;
  rank: number;
  user_id: string;
  name: string;
  score: string;
  stored: string;
  member: string;
  metadata: unknown;
}

const COLUMNS = 'position, rank, user_id, name, score, stored, member, metadata';
const toRow = (r: Row): ArchivedRow => ({ ...r, score: Number(r.score), metadata: r.metadata ?? null });

export class ArchiveRepo {
  /** Closed periods never reopen: a yes is remembered. */
  private readonly closed = new Set<string>();

  constructor(
    private readonly pools: PgPools,
    private readonly controlShard: string,
  ) {}

  private q<T extends object>(project: ProjectRef, text: string, values: unknown[]) {
    return this.pools.inScope(this.controlShard, project, (c) => c.query<T & Record<string, unknown>>(text, values));
  }

  async isClosed(project: ProjectRef, board: string, period: string): Promise<boolean> {
    const key = `${projectScope(project)}\u0000${board}\u0000${period}`;
    if (this.closed.has(key)) return true;
    const r = await this.q(project, 'SELECT 1 FROM period_closes WHERE board = $1 AND period = $2', [board, period]);
    if (r.rowCount === 1) this.closed.add(key);
    return r.rowCount === 1;
  }

  /** Closed periods, newest first, those before `before` (a period id) when given. */
  async periods(project: ProjectRef, board: string, limit: number, before: string | undefined): Promise<ClosedPeriod[]> {
    const r = await this.q<{ period: string; starts_at: Date | null; ends_at: Date | null; players: number }>(
      project,
      `SELECT period, starts_at, ends_at, players FROM period_closes
        WHERE board = $1 AND ($2::text IS NULL OR period < $2) ORDER BY period DESC LIMIT $3`,
      [board, before ?? null, limit],
    );
    return r.rows.map((x) => ({ period: x.period, starts_at: x.starts_at?.toISOString() ?? null, ends_at: x.ends_at?.toISOString() ?? null, players: x.players }));
  }

  async total(project: ProjectRef, board: string, period: string, view: string): Promise<number> {
    const r = await this.q<{ n: number }>(project, 'SELECT count(*)::int AS n FROM period_archive WHERE board = $1 AND period = $2 AND view = $3', [board, period, view]);
    return r.rows[0]!.n;
  }

  /** Rows from `offset` (0-based position), or strictly after a place. */
  async page(project: ProjectRef, board: string, period: string, view: string, limit: number, at: { offset?: number; after?: BoardKey }): Promise<ArchivedRow[]> {
    const r = at.after
      ? await this.q<Row>(
      project,
          `SELECT ${COLUMNS} FROM period_archive WHERE board = $1 AND period = $2 AND view = $3
             AND (stored::bigint, member COLLATE "C") > ($4::bigint, $5::text COLLATE "C")
           ORDER BY position LIMIT $6`,
          [board, period, view, at.after.stored, at.after.member, limit],
        )
      : await this.q<Row>(project, `SELECT ${COLUMNS} FROM period_archive WHERE board = $1 AND period = $2 AND view = $3 AND position >= $4 ORDER BY position LIMIT $5`, [
          board,
          period,
          view,
          at.offset ?? 0,
          limit,
        ]);
    return r.rows.map(toRow);
  }

  /** The listed players' rows on a view. */
  async find(project: ProjectRef, board: string, period: string, view: string, userIds: readonly string[]): Promise<ArchivedRow[]> {
    const r = await this.q<Row>(project, `SELECT ${COLUMNS} FROM period_archive WHERE board = $1 AND period = $2 AND view = $3 AND user_id = ANY($4::text[]) ORDER BY position`, [
      board,
      period,
      view,
      [...userIds],
    ]);
    return r.rows.map(toRow);
  }

  /** Rows whose position is in [from, to]. */
  async range(project: ProjectRef, board: string, period: string, view: string, from: number, to: number): Promise<ArchivedRow[]> {
    const r = await this.q<Row>(project, `SELECT ${COLUMNS} FROM period_archive WHERE board = $1 AND period = $2 AND view = $3 AND position BETWEEN $4 AND $5 ORDER BY position`, [
      board,
      period,
      view,
      Math.max(0, from),
      to,
    ]);
    return r.rows.map(toRow);
  }

  /** Players with a strictly worse score than `score` on the board (by its order). */
  async worse(project: ProjectRef, board: string, period: string, view: string, score: number, order: 'desc' | 'asc'): Promise<number> {
    const r = await this.q<{ n: number }>(
      project,
      `SELECT count(*)::int AS n FROM period_archive WHERE board = $1 AND period = $2 AND view = $3 AND ${order === 'desc' ? 'score < $4' : 'score > $4'}`,
      [board, period, view, score],
    );
    return r.rows[0]!.n;
  }
}
