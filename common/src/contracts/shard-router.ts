/**
 * Maps players and boards to shards.
 *
 * A player homed in a region lives on that region's shard. A player registered
 * with region GLOBAL has no home region: rendezvous (highest-random-weight)
 * hashing of the user id picks the shard, so adding a shard moves only about
 * 1/N of those players (and a rebuild re-homes them; see docs/OPERATIONS.md).
 */
import { AppError } from './errors.js';
import { GLOBAL, type ShardDef, type Topology } from './topology.js';

/** FNV-1a, 32 bit: small, fast and stable across processes and versions. */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** murmur3's 32-bit finaliser: spreads FNV's weak low-entropy differences. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Rendezvous (highest-random-weight) hashing: the candidate with the highest
 * hash of (candidate, key), ties to the smallest id. Removing a candidate
 * moves only the keys it had; undefined when there is none.
 */
export function rendezvous(key: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestWeight = -1;
  for (const c of candidates) {
    const w = fmix32(fnv1a32(`${c}\u0000${key}`));
    if (w > bestWeight || (w === bestWeight && c < best!)) {
      best = c;
      bestWeight = w;
    }
  }
  return best;
}

export class ShardRouter {
  readonly topology: Topology;
  readonly shards: readonly ShardDef[];
  /** Configured region names, upper case, GLOBAL excluded. */
  readonly regions: readonly string[];
  private readonly byId: Map<string, ShardDef>;
  private readonly shardIds: readonly string[];

  constructor(topology: Topology) {
    this.topology = topology;
    this.shards = topology.shards;
    this.regions = Object.keys(topology.regions);
    this.byId = new Map(topology.shards.map((s) => [s.id, s]));
    this.shardIds = topology.shards.map((s) => s.id);
  }

  shard(id: string): ShardDef {
    const s = this.byId.get(id);
    if (!s) throw new Error(`unknown shard ${id}`);
    return s;
  }

  /**
   * Normalises a board or region name from a client: case-insensitive,
   * `GLOBAL` or a configured region; anything else is 400 `unknown_region`.
   */
  normalizeRegion(raw: unknown, fallback: string = GLOBAL): string {
    if (raw === undefined || raw === null || raw === '') return fallback;
    if (typeof raw !== 'string' || raw.length > 64) {
      throw new AppError('unknown_region', 'region must be GLOBAL or a configured region', {
        regions: [GLOBAL, ...this.regions],
      });
    }
    const up = raw.toUpperCase();
    if (up === GLOBAL || this.topology.regions[up] !== undefined) return up;
    throw new AppError('unknown_region', `unknown region "${raw.slice(0, 64)}"`, {
      regions: [GLOBAL, ...this.regions],
    });
  }

  /** The home shard of a player, from the player's home region (or the hash for GLOBAL). */
  homeShard(userId: string, region: string): ShardDef {
    if (region === GLOBAL) return this.hashShard(userId);
    const id = this.topology.regions[region];
    if (id === undefined) throw new AppError('unknown_region', `unknown region "${region}"`);
    return this.shard(id);
  }

  /** Rendezvous hashing: the shard with the highest hash of (shard id, user id). */
  hashShard(userId: string): ShardDef {
    return this.shard(rendezvous(userId, this.shardIds)!);
  }

  /** The shards holding a board: every shard for GLOBAL, the region's one otherwise. */
  shardsForBoard(board: string): readonly ShardDef[] {
    if (board === GLOBAL) return this.shards;
    return [this.homeShard('', board)];
  }

  /** The regions whose board lives on a shard. */
  regionsOnShard(shardId: string): string[] {
    return this.regions.filter((r) => this.topology.regions[r] === shardId);
  }
}
