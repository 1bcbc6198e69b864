/**
 * Lua scripts as the services run them: read once from a directory of
 * `.lua` files, `--- @include "includes/<name>"` lines replaced by that file
 * (as BullMQ does), so shared pieces such as a contract or the token bucket
 * are written once. Each script is run by the SHA1 of its expanded source
 * (EVALSHA, then EVAL when the server does not know it yet).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface Script {
  readonly name: string;
  /** The source with its includes expanded. */
  readonly source: string;
  readonly sha: string;
}

const INCLUDE = /^--- @include "([a-z0-9/_-]+)"[ \t]*$/gm;

/** A Lua file of `dir` with its includes expanded (each file at most once; includes may include). */
export function expandLua(dir: URL, name: string, seen = new Set<string>()): string {
  seen.add(name);
  const text = readFileSync(new URL(`${name}.lua`, dir), 'utf8');
  return text.replace(INCLUDE, (_line, inc: string) => (seen.has(inc) ? '' : `-- included from ${inc}.lua\n${expandLua(dir, inc, seen)}`));
}

/** The script `<name>.lua` of `dir`. */
export function loadLua(dir: URL, name: string): Script {
  const source = expandLua(dir, name);
  return { name, source, sha: createHash('sha1').update(source).digest('hex') };
}
