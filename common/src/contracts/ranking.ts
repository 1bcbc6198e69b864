/**
 * Board order and rank maths, the one TypeScript home of them: the service's
 * cross-shard gathers, the worker's period closer and the tests' reference
 * models use these (the Lua side is the service's `lua/includes/order.lua`).
 *
 * Every view of every board is kept in *place* order: (stored score, member)
 * ascending, which is Redis' own sorted-set order.
 * - The stored score is the score on `asc` boards and its negation on `desc`
 *   boards, so a lower stored score is a better one either way.
 * - The member is the user id (`shared` ties: equal scores list by user id)
 *   or `<16-digit µs when the score was reached>|<user id>` (`earliest`
 *   ties: the first to reach a score comes first).
 * - Ranks: `shared` is the standard competition rank, 1 + players with a
 *   strictly better score (1, 2, 2, 4); `earliest` is ordinal, 1 + players
 *   before the entry (1, 2, 3, 4).
 * - Percentile: share of players with a strictly worse score, percent, 2 decimals.
 *
 * Members and user ids are compared by UTF-16 code units, the same as Redis'
 * memcmp for the ASCII ids the platform accepts.
 *
 * The board `main` is `desc` with `shared` ties, so its order is score
 * descending, then user_id ascending; `compareBoard`, `mergeSorted`,
 * `rankPrefix` and `rankWindow` are that order on decoded scores.
 */
import type { SortOrder, TieBreak } from './boards/definition.js';

/** What order and rank maths need of a board's rules. */
export interface OrderRules {
  readonly order: SortOrder;
  readonly tieBreak: TieBreak;
}

/** A place on a view: the stored score (decimal text, as Redis has it) and the member. */
export interface Place {
  readonly stored: string;
  readonly member: string;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Negative when place `a` comes before place `b` in board order (any board). */
export function comparePlaces(a: Place, b: Place): number {
  const sa = Number(a.stored);
  const sb = Number(b.stored);
  if (sa !== sb) return sa - sb;
  return compareText(a.member, b.member);
}

/** The stored form of a score on a board of this order. */
export function storedOf(order: SortOrder, score: number): string {
  if (score === 0) return '0';
  return String(order === 'desc' ? -score : score);
}

/** The score a stored value stands for on a board of this order. */
export function scoreOf(order: SortOrder, stored: string | number): number {
  const n = order === 'desc' ? -Number(stored) : Number(stored);
  return n === 0 ? 0 : n;
}

/** The user id inside a member (`<µs>|<user id>` or the user id itself). */
export function userOfMember(member: string): string {
  const bar = member.indexOf('|');
  return bar < 0 ? member : member.slice(bar + 1);
}

/** The member a player's entry has: the user id, or the time the score was reached and the id (earliest ties). */
export function memberOf(tieBreak: TieBreak, userId: string, reachedUs: number): string {
  return tieBreak === 'earliest' ? `${String(reachedUs).padStart(16, '0')}|${userId}` : userId;
}

/** Whether score `a` is strictly better than score `b` on a board of this order. */
export function isBetter(order: SortOrder, a: number, b: number): boolean {
  return order === 'desc' ? a > b : a < b;
}

/** Lists each in place order merged into one in place order, keeping the first `limit`. */
export function mergePlaces<T extends Place>(lists: readonly (readonly T[])[], limit: number): T[] {
  return lists.flat().sort(comparePlaces).slice(0, limit);
}

/**
 * Ranks of consecutive rows of a view, in place order, given the 0-based
 * position of the first row on the view and, for shared ties, how many
 * players have a strictly better score than the first (only the first
 * score's block may begin before the rows). Earliest ties rank by position.
 */
export function rankPlaces(tieBreak: TieBreak, rows: readonly Pick<Place, 'stored'>[], firstPosition: number, aheadOfFirst: number): number[] {
  const out: number[] = [];
  rows.forEach((r, i) => {
    if (tieBreak === 'earliest') out.push(firstPosition + i + 1);
    else if (i === 0) out.push(aheadOfFirst + 1);
    else if (Number(rows[i - 1]!.stored) === Number(r.stored)) out.push(out[i - 1]!);
    else out.push(firstPosition + i + 1);
  });
  return out;
}

/** Ranks of a whole list in place order among themselves (a view's standings, a list of friends). */
export function rankList(tieBreak: TieBreak, rows: readonly Pick<Place, 'stored'>[]): number[] {
  return rankPlaces(tieBreak, rows, 0, 0);
}

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

/** Negative when `a` comes before `b` on a `desc`, `shared` board (the board `main`). */
export function compareBoard(a: BoardEntry, b: BoardEntry): number {
  if (a.score !== b.score) return b.score - a.score;
  return compareText(a.user_id, b.user_id);
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
  return rankWindow(rows, 0, 0);
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
  const ranks = rankPlaces(
    'shared',
    rows.map((r) => ({ stored: storedOf('desc', r.score) })),
    firstPosition,
    aboveFirstScore,
  );
  return rows.map((r, i) => ({ rank: ranks[i]!, user_id: r.user_id, name: r.name, score: r.score }));
}
