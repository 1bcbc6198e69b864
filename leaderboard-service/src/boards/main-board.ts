/**
 * The board `main` through the named-board endpoints (`/boards/main/...`):
 * it keeps its own keys and scripts (the original endpoints are exactly
 * this board), so these answers come from the main board's reader and
 * writer, in the named boards' shapes. `main` has no periods (`all`), no
 * metadata and no cursors; its operator is `set`, and `incr` by override
 * (`best` is not one of its operations).
 */
import { AppError, compareBoard, invalidField, rankList, storedOf, type Board, type RankedRow } from '@lb/common/contracts';
import { type Identity } from '@lb/common/platform';
import type { PartialFields, ReadOptions } from '../leaderboard/gather.js';
import type { BoardReader } from '../leaderboard/reads.js';
import type { ScoreWriter } from '../leaderboard/writes.js';
import type { BoardWriteAnswer } from './scores.js';

const withMeta = (r: RankedRow) => ({ ...r, metadata: null });
const partialOf = (a: PartialFields): PartialFields => (a.partial ? { partial: a.partial, missing_shards: a.missing_shards! } : {});

export class MainBoard {
  constructor(
    private readonly reader: BoardReader,
    private readonly writer: ScoreWriter,
    private readonly maxScoreDelta: number,
  ) {}

  async submit(board: Board, s: { player: Identity; byPlayer: boolean; value: number; op?: string | undefined; metadata?: unknown; idempotencyKey?: string | undefined; requestId: string }): Promise<BoardWriteAnswer> {
    if (s.byPlayer && !board.clientWrites) throw new AppError('client_writes_disabled', 'board main takes scores from game servers only', { board: board.id });
    if (s.metadata !== undefined) throw invalidField('metadata', 'the board main stores no metadata');
    const op = s.op ?? 'set';
    if (op === 'best') throw invalidField('op', 'the board main takes set and incr');
    if (op === 'incr' && (s.value === 0 || Math.abs(s.value) > this.maxScoreDelta)) throw invalidField('score', `an increment must be non-zero with |delta| <= ${this.maxScoreDelta}`);
    const w = await this.writer.write({ player: s.player, op: op === 'incr' ? 'add' : 'update', value: s.value, idempotencyKey: s.idempotencyKey, requestId: s.requestId });
    return {
      ok: true,
      board: 'main',
      period: 'all',
      user_id: w.user_id,
      region: w.region,
      score: w.score,
      changed: true,
      version: w.version,
      rank: w.rank,
      ...(w.missing_shards && { missing_shards: w.missing_shards }),
    };
  }

  async top(view: string, limit: number, opts: ReadOptions = {}) {
    const t = await this.reader.top(view, limit, opts);
    return { board: 'main', period: 'all', region: view, total: t.total, rows: t.rows.map(withMeta), next_cursor: null, ...partialOf(t) };
  }

  async rank(view: string, userId: string, opts: ReadOptions = {}) {
    const r = await this.reader.rank(view, userId, opts);
    return { found: true, board: 'main', period: 'all', region: view, user_id: r.user_id, name: r.name, score: r.score, rank: r.rank, total: r.total, percentile: r.percentile, metadata: null, ...partialOf(r) };
  }

  async around(view: string, userId: string, range: number, opts: ReadOptions = {}) {
    const a = await this.reader.around(view, userId, range, opts);
    return { board: 'main', period: 'all', region: view, self: withMeta(a.self), around: a.around.map(withMeta), ...partialOf(a) };
  }

  /** Ranks of listed players: one rank read each (the main board has no list read of its own). */
  async ranks(view: string, userIds: readonly string[]) {
    const found = await Promise.all(
      userIds.map((id) =>
        this.reader.rank(view, id).catch((e: unknown) => {
          if (e instanceof AppError && e.code === 'user_not_found') return undefined;
          throw e;
        }),
      ),
    );
    const rows = found.filter((r) => r !== undefined).sort(compareBoard);
    const listRanks = rankList('shared', rows.map((r) => ({ stored: storedOf('desc', r.score) })));
    const on = new Set(rows.map((r) => r.user_id));
    return {
      board: 'main',
      period: 'all',
      region: view,
      rows: rows.map((r, i) => ({ user_id: r.user_id, name: r.name, score: r.score, rank: r.rank, list_rank: listRanks[i]!, metadata: null })),
      missing: userIds.filter((id) => !on.has(id)),
    };
  }

  async periods() {
    const t = await this.reader.top('GLOBAL', 1);
    return { board: 'main', periods: [{ id: 'all', starts_at: null, ends_at: null, status: 'open', players: t.total }], next_before: null };
  }
}
