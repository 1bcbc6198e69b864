/**
 * A player's entry on the board `main` as its home shard's Redis holds it
 * (the board engine's keys, see @lb/common keys.ts): tests that check what
 * a write left in Redis read it here, in one place.
 */
import { ALL_TIME, DEFAULT_PROJECT, GLOBAL, MAIN_BOARD, scoreOf, type ProjectRef, type ShardKeys } from '@lb/common/contracts';

/** What a test needs of a node-redis client. */
interface RedisReads {
  zScore(key: string, member: string): Promise<number | null>;
  hGet(key: string, field: string): Promise<string | null | undefined>;
}

export interface MainEntry {
  /** null when the player has no entry. */
  score: number | null;
  version: number | null;
  name: string | null;
  region: string | null;
}

/** The entry of `userId` of a project (default: the default project). */
export async function mainEntry(client: RedisReads, shard: ShardKeys, userId: string, project: ProjectRef = DEFAULT_PROJECT): Promise<MainEntry> {
  const keys = shard.project(project);
  const p = keys.boardPeriod(MAIN_BOARD, ALL_TIME);
  const [stored, version, name, region] = await Promise.all([
    client.zScore(p.view(GLOBAL), userId),
    client.hGet(p.versions, userId),
    client.hGet(keys.names, userId),
    client.hGet(keys.regions, userId),
  ]);
  return {
    score: stored === null ? null : scoreOf('desc', String(stored)),
    version: version == null ? null : Number(version),
    name: name ?? null,
    region: region ?? null,
  };
}
