/**
 * The event every accepted score write emits on its home shard's queue, and
 * its id. `score` is the absolute score after the write and `version` the
 * player's version after it, so consumers can apply events in any order.
 *
 * The write script builds the same event in Lua
 * (leaderboard-service/src/redis/lua/includes/contract.lua); a test runs it
 * through {@link checkScoreEvent}'s rules (see queue.ts).
 */

/**
 * Every operation a score write can be, as events name them: the
 * original endpoints' writes to `main` (register, create, update, add) and
 * the board operators (set, incr, best).
 */
export const SCORE_OPS = ['register', 'create', 'update', 'add', 'set', 'incr', 'best'] as const;
export type ScoreOp = (typeof SCORE_OPS)[number];

export interface ScoreEvent {
  /**
   * The project the write belongs to (see tenancy.ts): both or neither.
   * Events queued before tenancy have neither: they are the default project's.
   */
  tenant?: string;
  project?: string;
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
  /** Every write's event carries its board and period; events queued before the single board engine have none: they are `main`'s, period `all`. */
  board?: string;
  period?: string;
  /** The metadata stored with the entry by this write, when it set one. */
  metadata?: Record<string, unknown>;
  /** The entry's place among equal scores (see lua/includes/board.lua). */
  member?: string;
  /**
   * The W3C `traceparent` of the request that made the write, when tracing
   * is on and that request was sampled (see tracing.ts): the relay and the
   * worker attach their spans for this event to it.
   */
  traceparent?: string;
}

/**
 * The id of a player's event of one version of one board's period of one
 * project: its outbox entry and the id of the queue job that carries it
 * alone, so re-sends are deduplicated. Unique across the projects of a
 * shard: `<tenant>/<project>/<board>/<period>/<user>#<version>`. Events
 * queued before tenancy (no project) keep the id they were written with:
 * `<board>/<period>/<user>#<version>`, or `<user>#<version>` for one from
 * before the single engine (no board).
 */
export function eventIdOf(e: Pick<ScoreEvent, 'user_id' | 'version' | 'board' | 'period' | 'tenant' | 'project'>): string {
  const own = `${e.user_id}#${e.version}`;
  if (e.board === undefined) return own;
  const id = `${e.board}/${e.period}/${own}`;
  return e.tenant === undefined ? id : `${e.tenant}/${e.project}/${id}`;
}
