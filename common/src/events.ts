/**
 * The event every accepted score write emits on its home shard's queue, and
 * its id. `score` is the absolute score after the write and `version` the
 * player's version after it, so consumers can apply events in any order.
 *
 * The write script builds the same event in Lua
 * (leaderboard-service/src/redis/lua/includes/contract.lua); a test runs it
 * through {@link checkScoreEvent}'s rules (see queue.ts).
 */

/** Every operation a score write can be, as events name them. */
export const SCORE_OPS = ['register', 'create', 'update', 'add'] as const;
export type ScoreOp = (typeof SCORE_OPS)[number];

export interface ScoreEvent {
  user_id: string;
  name: string;
  region: string;
  op: ScoreOp;
  delta: number;
  score: number;
  version: number;
  /** Time of the write, ms since epoch. */
  ts: number;
  request_id: string;
}

/**
 * The id of a player's event of one version: its outbox entry and the id of
 * the queue job that carries it alone, so re-sends are deduplicated.
 */
export function eventIdOf(userId: string, version: number): string {
  return `${userId}#${version}`;
}
