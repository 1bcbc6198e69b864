/**
 * The shape of the shard topology, shared by everything that routes by shard
 * (the shard router, key names, queues). Loading and validating one from the
 * environment is platform code: platform/topology.ts.
 */

export const GLOBAL = 'GLOBAL';

export interface RedisNode {
  readonly host: string;
  readonly port: number;
}

/**
 * Where a shard's Redis is: one server at a URL (no replica: `--no-replicas`,
 * tests), or the current primary of a Sentinel master name, found through
 * the Sentinels and followed across failovers by every client. A shard
 * behind Sentinel has a replica, and its writes are answered once the
 * replica has them (leaderboard-service redis/connection.ts).
 */
export type RedisEndpoint =
  | { readonly kind: 'server'; readonly url: string }
  | { readonly kind: 'sentinel'; readonly master: string; readonly sentinels: readonly RedisNode[] };

export interface ShardDef {
  /** Short id, also used in key hash tags and queue names: `[a-z0-9_-]{1,32}`. */
  readonly id: string;
  readonly redis: RedisEndpoint;
  readonly postgres: string;
}

export interface Topology {
  readonly shards: readonly ShardDef[];
  /** Region name (upper case) → shard id. Several regions may share a shard. */
  readonly regions: Readonly<Record<string, string>>;
}

/** A Redis endpoint for logs and errors: the URL, or `sentinel:<master>@host:port,…`. */
export function describeRedis(e: RedisEndpoint): string {
  if (e.kind === 'server') return e.url;
  return `sentinel:${e.master}@${e.sentinels.map((n) => `${n.host}:${n.port}`).join(',')}`;
}
