/**
 * The Lua scripts, loaded once (@lb/common lua-scripts.ts: includes
 * expanded, run by SHA1), so shared pieces such as the contract (score
 * encoding, event, answers) and the token bucket are written once.
 */
import { expandLua as expandIn, loadLua, OUTBOX_SETTLE, type Script } from '@lb/common/platform';

export type { Script };

const LUA_DIR = new URL('./lua/', import.meta.url);
const load = (name: string): Script => loadLua(LUA_DIR, name);

/** A script of this service's lua/ directory with its includes expanded (what tests check). */
export const expandLua = (name: string): string => expandIn(LUA_DIR, name);

export const SCRIPTS = {
  write: load('write'),
  page: load('page'),
  before: load('before'),
  find: load('find'),
  around: load('around'),
  restore: load('restore'),
  upgrade: load('upgrade'),
  liveDrop: load('live-drop'),
  relayTake: load('relay-take'),
  quota: load('quota'),
  /** @lb/common's (the worker runs it too). */
  outboxSettle: OUTBOX_SETTLE,
} as const;
