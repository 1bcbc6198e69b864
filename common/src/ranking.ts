/**
 * Board order and rank maths, shared by the cross-shard gather and the tests'
 * reference model.
 *
 * Board order: score descending, then user_id ascending (byte order; user ids
 * are ASCII so JS code-unit comparison is the same as Redis' memcmp).
 * Rank: standard competition rank, 1 + players with a strictly higher score.
 * Percentile: share of players with a strictly lower score, percent, 2 decimals.
 */

export interface BoardEntry {
  readonly user_id: string;
  readonly score: number;
}

export interface NamedEntry extends BoardEntry {
  readonly name: string;
}

export interface RankedRow {
  rank: number;
  user_id: string;
  name: string;
  score: number;
}

/** Negative when `a` comes before `b` on a board. */
export function compareBoard(a: BoardEntry, b: BoardEntry): number {
  if (a.score !== b.score) return b.score - a.score;
  return a.user_id < b.user_id ? -1 : a.user_id > b.user_id ? 1 : 0;
}

/**
 * Merges lists that are each already in board order into one list in board
 * order, keeping at most `limit` entries from the front.
 */
export function mergeSorted<T extends BoardEntry>(lists: readonly (readonly T[])[], limit: number): T[] {
  const idx = lists.map(() => 0);
  const out: T[] = [];
  while (out.length < limit) {
    let best = -1;
    for (let i = 0; i < lists.length; i++) {
      const cand = lists[i]![idx[i]!];
      if (cand === undefined) continue;
      if (best < 0 || compareBoard(cand, lists[best]![idx[best]!]!) < 0) best = i;
    }
    if (best < 0) break;
    out.push(lists[best]![idx[best]!]!);
    idx[best]!++;
  }
  return out;
}

/**
 * Like `mergeSorted` but keeps the last `limit` entries (the ones just above a
 * position on the board).
 */
export function mergeSortedTail<T extends BoardEntry>(lists: readonly (readonly T[])[], limit: number): T[] {
  const all = mergeSorted(lists, Number.MAX_SAFE_INTEGER);
  return all.slice(Math.max(0, all.length - limit));
}

/**
 * Competition ranks for a prefix of a board (the top N): every player with a
 * strictly higher score is in the prefix before the row, so the prefix alone
 * determines each rank.
 */
export function rankPrefix(rows: readonly NamedEntry[]): RankedRow[] {
  const out: RankedRow[] = [];
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    const prev = out[i - 1];
    const rank = prev && prev.score === r.score ? prev.rank : i + 1;
    out.push({ rank, user_id: r.user_id, name: r.name, score: r.score });
  }
  return out;
}

/** Percent of `total` that `lower` is, rounded to two decimals (0 on an empty board). */
export function percentile(lower: number, total: number): number {
  if (total <= 0) return 0;
  return Math.round((lower / total) * 10000) / 100;
}

/**
 * Ranks for a contiguous window of a board, given the 0-based board position
 * of its first row and the number of players with a strictly higher score than
 * that first row (`aboveFirstScore`). A row's rank is 1 + the position of the
 * first row with its score; only the first score's block may start before the
 * window, and `aboveFirstScore` covers it.
 */
export function rankWindow(rows: readonly NamedEntry[], firstPosition: number, aboveFirstScore: number): RankedRow[] {
  const out: RankedRow[] = [];
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    const prev = out[i - 1];
    let rank: number;
    if (i === 0) rank = aboveFirstScore + 1;
    else if (prev!.score === r.score) rank = prev!.rank;
    else rank = firstPosition + i + 1;
    out.push({ rank, user_id: r.user_id, name: r.name, score: r.score });
  }
  return out;
}
