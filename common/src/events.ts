/**
 * The event every accepted score write emits on its home shard's queue.
 * `score` is the absolute score after the write and `version` the player's
 * version after it, so consumers can apply events in any order.
 */
export type ScoreOp = 'register' | 'create' | 'update' | 'add';

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
