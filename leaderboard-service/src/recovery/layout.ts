/**
 * The Redis layout of a shard, upgraded in place. Before the board `main`
 * ran on the board engine it had keys of its own: `board:<view>` sorted
 * sets and a `user:<id>` hash per player (name, region, score, version,
 * updated_at). The engine keeps main like any board (`b:main:all:z:<view>`,
 * its versions hash) and the home regions in `regions`, so a shard found
 * in the old layout is converted before the service serves from it: the
 * views are renamed (the sorted sets are the same), each player's version,
 * region and name move into the hashes, the user hashes go. Idempotency
 * records of main keep their names (see @lb/common keys.ts).
 *
 * Run by every replica at start-up (createDeps) and by rebuild-redis,
 * before anything else: idempotent, safe to run from several replicas at
 * once, and a marker key makes it one GET once done. Stop every replica of
 * the old version before starting the new one: an old replica would go on
 * writing the old keys.
 */
import { ALL_TIME, GLOBAL, MAIN_BOARD } from '@lb/common/contracts';
import { type Logger } from '@lb/common/platform';
import { decodeAnswer, num } from '../redis/contract.js';
import { SCRIPTS } from '../redis/scripts.js';
import type { ShardStore } from '../redis/shard-store.js';

/** The layout version the engine writes (the marker's value). */
export const LAYOUT_VERSION = '2';

const BATCH = 500;

export interface UpgradeResult {
  shard: string;
  /** Already in the engine's layout (nothing was looked at). */
  current: boolean;
  views: number;
  players: number;
}

/** Converts one shard from the old layout of `main`, if it is in it. */
export async function upgradeLayout(store: ShardStore, regions: readonly string[], log?: Logger): Promise<UpgradeResult> {
  const k = store.keys;
  const marker = k.layout;
  const c = store.client;
  const result: UpgradeResult = { shard: store.shard.id, current: false, views: 0, players: 0 };
  if ((await store.conn.call(() => c.get(marker))) === LAYOUT_VERSION) return { ...result, current: true };

  const main = k.boardPeriod(MAIN_BOARD, ALL_TIME);
  const viewKeys = [GLOBAL, ...regions].flatMap((v) => [k.before.view(v), main.view(v)]);
  result.views = num(decodeAnswer('upgrade', await store.conn.runScript(SCRIPTS.upgrade, viewKeys, ['views'])), 'moved');

  let cursor = '0';
  do {
    const page = await store.conn.call(() => c.scan(cursor, { MATCH: k.before.userPattern, COUNT: BATCH }));
    cursor = String(page.cursor);
    if (page.keys.length > 0) {
      const a = decodeAnswer('upgrade', await store.conn.runScript(SCRIPTS.upgrade, [main.versions, k.regions, k.names, ...page.keys], ['players']));
      result.players += num(a, 'moved');
    }
  } while (cursor !== '0');
  await store.conn.call(() => c.set(marker, LAYOUT_VERSION));
  if (result.views > 0 || result.players > 0) log?.warn('converted the board main from its old Redis layout', { ...result });
  return result;
}

/**
 * Converts every shard that answers now (awaited), and keeps trying the
 * others every second in the background until each is converted (a shard
 * down at start-up serves nothing until it is back). Returns the function
 * that stops the retries.
 */
export async function upgradeLayouts(stores: readonly ShardStore[], regions: readonly string[], log: Logger): Promise<() => void> {
  const pending = new Set<ShardStore>();
  const attempt = async (s: ShardStore) => {
    try {
      await upgradeLayout(s, regions, log);
      pending.delete(s);
    } catch (e) {
      pending.add(s);
      log.warn('redis layout not checked yet; retrying', { shard: s.shard.id, err: e as Error });
    }
  };
  await Promise.all(stores.map((s) => (s.ready() ? attempt(s) : pending.add(s))));
  if (pending.size === 0) return () => {};
  const timer = setInterval(() => {
    for (const s of [...pending]) if (s.ready()) void attempt(s);
    if (pending.size === 0) clearInterval(timer);
  }, 1000);
  timer.unref();
  return () => clearInterval(timer);
}
