/**
 * The outbox settle script (lua/outbox-settle.lua), shared by the worker
 * (events persisted or dead-lettered) and the leaderboard-service's relay
 * (unreadable events): the one way an event leaves a shard's outbox, so
 * each project's count of its events there stays exact.
 */
import type { ShardKeys } from '../contracts/keys.js';
import { loadLua, type Script } from './lua-scripts.js';

export const OUTBOX_SETTLE: Script = loadLua(new URL('./lua/', import.meta.url), 'outbox-settle');

/** The keys the settle script takes: the outbox, its projects' counts, and (`withIndex`) its index. */
export function outboxSettleKeys(keys: ShardKeys, withIndex: boolean): string[] {
  return withIndex ? [keys.outbox, keys.outboxProjects, keys.outboxIndex] : [keys.outbox, keys.outboxProjects];
}
