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

/**
 * Runs a script by its SHA1 (EVALSHA), sending its source (EVAL) when the
 * server does not know it yet (a restarted or new Redis). `send` sends one
 * raw command on the caller's client, whichever library it is (node-redis'
 * sendCommand, ioredis' call).
 */
export async function evalCached(send: (command: string[]) => Promise<unknown>, sha: string, source: string, keys: readonly string[], args: readonly string[]): Promise<unknown> {
  const tail = [String(keys.length), ...keys, ...args];
  try {
    return await send(['EVALSHA', sha, ...tail]);
  } catch (e) {
    if (!String((e as Error).message).startsWith('NOSCRIPT')) throw e;
    return await send(['EVAL', source, ...tail]);
  }
}

/** The script `<name>.lua` of `dir`. */
export function loadLua(dir: URL, name: string): Script {
  const source = expandLua(dir, name);
  return { name, source, sha: createHash('sha1').update(source).digest('hex') };
}
