/**
 * Writes batches of score events to a shard's Postgres. The only module that
 * builds SQL for the worker; callers get plain counts and three error kinds:
 * {@link InvalidBatchError} (the database refuses the data: some event in the
 * batch is poison), StoreUnavailable (the database is unavailable, by the
 * one classification of @lb/common's pg-pools: retry later, however long it
 * takes) and anything else (a fault: retried with the job's attempts).
 */
import type pg from 'pg';
import { ALL_TIME, MAIN_BOARD, type ProjectRef, type ScoreEvent } from '@lb/common/contracts';
import { pgFailure, type PgPools } from '@lb/common/platform';

/** Plain counts of one applied batch. */
export interface ApplyResult {
  /** Distinct (user_id, version) events in the batch. */
  readonly events: number;
  /** Of those, rows new to `board_score_events` (the rest had been written before). */
  readonly inserted: number;
  /** Distinct players in the batch. */
  readonly players: number;
  /** `board_scores` rows inserted or moved to a newer version. */
  readonly upserted: number;
}

/**
 * The database refused the batch's data (SQLSTATE class 22 data exception or
 * 23 integrity violation). Retrying the same batch cannot succeed; the caller
 * should split it to find the offending event.
 */
export class InvalidBatchError extends Error {
  readonly sqlState: string;
  constructor(message: string, sqlState: string, cause: unknown) {
    super(message, { cause });
    this.name = 'InvalidBatchError';
    this.sqlState = sqlState;
  }
}

// One statement per batch of one project, both writes as data-modifying
// CTEs of it (all or nothing, in the project's transaction of
// PgPools.inScope, whose settings give every row its tenant_id and
// project_id: the columns' defaults, checked by row-level security), and it
// is prepared by name, so each connection parses and plans it once. Every
// column is one array (unnest): a batch of any size is the same statement.
// Events are applied in any order and any number of times: a row only moves
// forward in version, and an event is recorded once per (board, period,
// user_id, version). Every board's events go to these two tables; the board
// `main`'s events carry no board (their wire shape predates named boards)
// and are its period `all` (sql/007). Both CTEs are read to the end by the
// outer query, scores first: every batch takes its row locks in the same
// order (see applyBatch).
const APPLY_BATCH = {
  name: 'lb_apply_score_batch',
  text: `
WITH scores AS (
  INSERT INTO board_scores (board, period, user_id, name, region, score, version, metadata, updated_at, member)
  SELECT u.board, u.period, u.user_id, u.name, u.region, u.score, u.version, u.metadata::jsonb, timestamptz 'epoch' + u.ts * interval '1 millisecond', u.member
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::text[], $9::bigint[], $10::text[])
      AS u(board, period, user_id, name, region, score, version, metadata, ts, member)
  ON CONFLICT (tenant_id, project_id, board, period, user_id) DO UPDATE
     SET name = EXCLUDED.name, region = EXCLUDED.region, score = EXCLUDED.score, version = EXCLUDED.version,
         metadata = COALESCE(EXCLUDED.metadata, board_scores.metadata), updated_at = EXCLUDED.updated_at, member = EXCLUDED.member
   WHERE board_scores.version < EXCLUDED.version
  RETURNING 1
), logged AS (
  INSERT INTO board_score_events (board, period, user_id, version, region, op, delta, score, metadata, ts, request_id)
  SELECT u.board, u.period, u.user_id, u.version, u.region, u.op, u.delta, u.score, u.metadata::jsonb,
         timestamptz 'epoch' + u.ts * interval '1 millisecond', u.request_id
    FROM unnest($11::text[], $12::text[], $13::text[], $14::bigint[], $15::text[], $16::text[], $17::bigint[], $18::bigint[], $19::text[], $20::bigint[], $21::text[])
      AS u(board, period, user_id, version, region, op, delta, score, metadata, ts, request_id)
  ON CONFLICT (tenant_id, project_id, board, period, user_id, version) DO NOTHING
  RETURNING 1
)
SELECT (SELECT count(*) FROM scores)::int AS upserted, (SELECT count(*) FROM logged)::int AS inserted`,
} as const;

export class ScoreRepository {
  constructor(private readonly pools: PgPools) {}

  /**
   * Applies a batch of one shard's events of one project in ONE
   * transaction of that project's row scope (one statement): the newest
   * event of each entry (a player on a board's period) upserts
   * `board_scores` (only if newer than the row), and every event is
   * appended to `board_score_events` (once per version). All or nothing.
   *
   * Rows are written in entry order, so concurrent batches (several worker
   * processes on one queue) take row locks in the same order and cannot
   * deadlock each other.
   */
  async applyBatch(shardId: string, project: ProjectRef, events: readonly ScoreEvent[]): Promise<ApplyResult> {
    const keyed = dedupe(events.map(onBoard));
    if (keyed.length === 0) return { events: 0, inserted: 0, players: 0, upserted: 0 };
    const newest = foldToNewest(keyed);
    const unique = keyed.map((k) => k.e);
    return this.pools.inScope(
      shardId,
      project,
      async (client) => {
        try {
          const { rows } = await client.query<{ upserted: number; inserted: number }>({ ...APPLY_BATCH, values: [...boardScoreColumns(newest), ...boardEventColumns(unique)] });
          return { events: unique.length, inserted: rows[0]!.inserted, players: newest.length, upserted: rows[0]!.upserted };
        } catch (e) {
          throw classify(shardId, e);
        }
      },
      'apply_batch',
    );
  }

  /** Round trip to a shard's database, for health checks. */
  async ping(shardId: string): Promise<void> {
    await this.pools.forShard(shardId).query('SELECT 1');
  }
}

/** An event placed on its board and period: the board `main`'s events carry neither. */
type BoardEvent = ScoreEvent & { board: string; period: string };
const onBoard = (e: ScoreEvent): BoardEvent => (e.board === undefined ? { ...e, board: MAIN_BOARD, period: ALL_TIME } : (e as BoardEvent));

/** An event with what its row is about (a player on one period of a board), as one string computed once. */
interface Keyed {
  readonly e: BoardEvent;
  readonly entry: string;
}

/** Events sorted by (entry, version), one per (entry, version). */
function dedupe(events: readonly BoardEvent[]): Keyed[] {
  const sorted = events.map((e) => ({ e, entry: `${e.board}\u0000${e.period}\u0000${e.user_id}` })).sort((a, b) => compareIds(a.entry, b.entry) || a.e.version - b.e.version);
  return sorted.filter((k, i) => i === 0 || k.entry !== sorted[i - 1]!.entry || k.e.version !== sorted[i - 1]!.e.version);
}

/**
 * The newest event of each player, in user_id order. One row per player is
 * required anyway: ON CONFLICT DO UPDATE cannot touch a row twice in one statement.
 */
function foldToNewest(sortedUnique: readonly Keyed[]): BoardEvent[] {
  const out: BoardEvent[] = [];
  for (const [i, { e, entry }] of sortedUnique.entries()) {
    const last = out[out.length - 1];
    // Sorted by version: the later wins, keeping the metadata an earlier one set
    // when it sets none (an entry keeps its metadata until a write replaces it).
    if (last && i > 0 && sortedUnique[i - 1]!.entry === entry) out[out.length - 1] = e.metadata === undefined && last.metadata !== undefined ? { ...e, metadata: last.metadata } : e;
    else out.push(e);
  }
  return out;
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function boardScoreColumns(rows: readonly ScoreEvent[]): unknown[] {
  return [
    rows.map((e) => e.board),
    rows.map((e) => e.period),
    rows.map((e) => e.user_id),
    rows.map((e) => e.name),
    rows.map((e) => e.region),
    rows.map((e) => e.score),
    rows.map((e) => e.version),
    rows.map((e) => (e.metadata === undefined ? null : JSON.stringify(e.metadata))),
    rows.map((e) => e.ts),
    rows.map((e) => e.member ?? null),
  ];
}

function boardEventColumns(rows: readonly ScoreEvent[]): unknown[] {
  return [
    rows.map((e) => e.board),
    rows.map((e) => e.period),
    rows.map((e) => e.user_id),
    rows.map((e) => e.version),
    rows.map((e) => e.region),
    rows.map((e) => e.op),
    rows.map((e) => e.delta),
    rows.map((e) => e.score),
    rows.map((e) => (e.metadata === undefined ? null : JSON.stringify(e.metadata))),
    rows.map((e) => e.ts),
    rows.map((e) => e.request_id),
  ];
}

/** Data the server refuses becomes InvalidBatchError; an unavailable database StoreUnavailable; anything else stays as is. */
function classify(shardId: string, e: unknown): unknown {
  const state = (e as pg.DatabaseError | undefined)?.code;
  if (typeof state === 'string' && (state.startsWith('22') || state.startsWith('23'))) {
    return new InvalidBatchError(`postgres refused the batch: ${(e as Error).message}`, state, e);
  }
  return pgFailure(shardId, e);
}
