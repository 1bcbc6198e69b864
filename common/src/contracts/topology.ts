/**
 * The shape of the shard topology, shared by everything that routes by shard
 * (the shard router, key names, queues). Loading and validating one from the
 * environment is platform code: platform/topology.ts.
 */

export const GLOBAL = 'GLOBAL';

export interface ShardDef {
  /** Short id, also used in key hash tags and queue names: `[a-z0-9_-]{1,32}`. */
  readonly id: string;
  readonly redis: string;
  readonly postgres: string;
}

export interface Topology {
  readonly shards: readonly ShardDef[];
  /** Region name (upper case) → shard id. Several regions may share a shard. */
  readonly regions: Readonly<Record<string, string>>;
}
