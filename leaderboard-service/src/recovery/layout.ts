/**
 * The Redis layout of a shard, upgraded in place before the service serves
 * from it. Versions of the layout (the shard's `layout` marker):
 *
 * 1. Before the board `main` ran on the board engine it had keys of its
 *    own: `board:<view>` sorted sets and a `user:<id>` hash per player
 *    (name, region, score, version, updated_at).
 * 2. The engine keeps main like any board (`b:main:all:z:<view>`, its
 *    versions hash) and the home regions in `regions`: the views are
 *    renamed (the sorted sets are the same), each player's version, region
 *    and name move into the hashes, the user hashes go. No project in any
 *    name.
 * 3. Tenancy: every key a project owns carries the project after the hash
 *    tag (`p:<tenant>/<project>:...`, see @lb/common keys.ts); the data of
 *    layout 2 is the default project's, so each of its project keys (names,
 *    regions, idempotency records, per-player buckets, login counters,
 *    every board's periods) is renamed into the default project's, value
 *    and TTL as they are. The shard's own keys (outbox and its index, the
 *    relay lease, per-region buckets, the live registry, the queue) keep
 *    their names: events waiting in the outbox are sent as they are (an
 *    event without a project is the default project's).
 *
 * A shard at version 1 goes through 2 to 3. Run by every replica at
 * start-up (createDeps) and by rebuild-redis, before anything else:
 * idempotent, safe to run from several replicas at once (each step renames
 * only onto a free name, in one script per batch), and the marker makes it
 * one GET once done. Stop every replica of the old version before starting
 * the new one: an old replica would go on writing the old keys.
 */
import { ALL_TIME, GLOBAL, MAIN_BOARD, upgradedKeyName } from '@lb/common/contracts';
import { type Logger } from '@lb/common/platform';
import { decodeAnswer, num } from '../redis/contract.js';
import { SCRIPTS } from '../redis/scripts.js';
import type { ShardStore } from '../redis/shard-store.js';

/** The layout version the engine writes (the marker's value). */
export const LAYOUT_VERSION = '3';
/** The layout before tenancy (no project in the names). */
const LAYOUT_UNTENANTED = '2';

const BATCH = 500;

export interface UpgradeResult {
  shard: string;
  /** Already in the current layout (nothing was looked at). */
  current: boolean;
  /** Layout 1 -> 2: views of main renamed. */
  views: number;
  /** Layout 1 -> 2: players of main converted. */
  players: number;
  /** Layout 2 -> 3: keys renamed into the default project's. */
  renamed: number;
  /** Layout 2 -> 3: keys left where they were because their new name was taken (logged). */
  kept: number;
}

/** Converts one shard to the current layout from whichever older one it is in. */
export async function upgradeLayout(store: ShardStore, regions: readonly string[], log?: Logger): Promise<UpgradeResult> {
  const k = store.keys;
  const marker = k.layout;
  const c = store.client;
  const result: UpgradeResult = { shard: store.shard.id, current: false, views: 0, players: 0, renamed: 0, kept: 0 };
  const found = await store.conn.call(() => c.get(marker));
  if (found === LAYOUT_VERSION) return { ...result, current: true };

  if (found !== LAYOUT_UNTENANTED) {
    // 1 -> 2: into layout 2's names (k.legacy), which the next step renames.
    const main = k.legacy.boardPeriod(MAIN_BOARD, ALL_TIME);
    const viewKeys = [GLOBAL, ...regions].flatMap((v) => [k.before.view(v), main.view(v)]);
    result.views = num(decodeAnswer('upgrade', await store.conn.runScript(SCRIPTS.upgrade, viewKeys, ['views'])), 'moved');
    let cursor = '0';
    do {
      const page = await store.conn.call(() => c.scan(cursor, { MATCH: k.before.userPattern, COUNT: BATCH }));
      cursor = String(page.cursor);
      if (page.keys.length > 0) {
        const a = decodeAnswer('upgrade', await store.conn.runScript(SCRIPTS.upgrade, [main.versions, k.legacy.regions, k.legacy.names, ...page.keys], ['players']));
        result.players += num(a, 'moved');
      }
    } while (cursor !== '0');
  }

  // 2 -> 3: every project key of layout 2 becomes the default project's.
  let cursor = '0';
  do {
    const page = await store.conn.call(() => c.scan(cursor, { MATCH: `${k.prefix}*`, COUNT: BATCH }));
    cursor = String(page.cursor);
    const pairs = page.keys.flatMap((name) => {
      const to = upgradedKeyName(k, name);
      return to === undefined ? [] : [name, to];
    });
    if (pairs.length > 0) {
      const a = decodeAnswer('upgrade', await store.conn.runScript(SCRIPTS.upgrade, pairs, ['rename']));
      result.renamed += num(a, 'moved');
      result.kept += num(a, 'kept');
    }
  } while (cursor !== '0');

  await store.conn.call(() => c.set(marker, LAYOUT_VERSION));
  if (result.kept > 0) log?.error('redis layout upgrade left keys whose new name was taken (an old replica still writing?)', { ...result });
  else if (result.views > 0 || result.players > 0 || result.renamed > 0) log?.warn('converted the shard from an older Redis layout', { ...result });
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
