/**
 * The Lua scripts, loaded once: `--- @include "includes/<name>"` lines are
 * replaced by that file (as BullMQ does), so shared pieces such as the
 * contract (score encoding, event, answers) and the token bucket are written
 * once. Each script is run by the SHA1 of its expanded source.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface Script {
  readonly name: string;
  /** The source with its includes expanded. */
  readonly source: string;
  readonly sha: string;
}

const LUA_DIR = new URL('./lua/', import.meta.url);
const INCLUDE = /^--- @include "([a-z0-9/_-]+)"[ \t]*$/gm;

/** A Lua file with its includes expanded (each file at most once; includes may include). */
export function expandLua(name: string, seen = new Set<string>()): string {
  seen.add(name);
  const text = readFileSync(new URL(`${name}.lua`, LUA_DIR), 'utf8');
  return text.replace(INCLUDE, (_line, inc: string) => (seen.has(inc) ? '' : `-- included from ${inc}.lua\n${expandLua(inc, seen)}`));
}

function load(name: string): Script {
  const source = expandLua(name);
  return { name, source, sha: createHash('sha1').update(source).digest('hex') };
}

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
} as const;
