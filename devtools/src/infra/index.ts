/**
 * Local infrastructure for tests and the local topology: finding/installing
 * system servers and running private Redis (with replicas and Sentinels)
 * and Postgres processes.
 * Development only: scripts and tests import it, production code never does
 * (the SQL migrator, which production runs, is in @lb/common).
 */
export { DEBIAN_PACKAGES, ensureBinaries, findBinary, isBinaryName, METRICS_BINARIES } from './binaries.js';
export type { BinaryName, EnsureBinariesOptions } from './binaries.js';
export { killChildrenOnSignals, killTrackedChildrenSync } from './child.js';
export { DIST_NODE_ARGS, distNodeArgs, SOURCE_NODE_ARGS } from './node-args.js';
export { freePort } from './ports.js';
export { PG_SUPERUSER, startPostgres } from './postgres.js';
export type { PostgresProcess, StartPostgresOptions } from './postgres.js';
export { infoField, killRedis, pingRedis, redisCommand, redisRole, startRedis } from './redis-server.js';
export type { RedisAddress, RedisProcess, RedisReply, RedisRole, StartRedisOptions } from './redis-server.js';
export {
  askSentinels,
  monitoredMasters,
  rememberedPrimaries,
  renderSentinelConfig,
  SENTINEL_CONFIG,
  SENTINEL_DEFAULTS,
  sentinelPrimary,
  sentinelView,
  startSentinel,
  waitForSentinels,
} from './sentinel.js';
export type { SentinelMaster, SentinelProcess, SentinelView, StartSentinelOptions } from './sentinel.js';
export { DEFAULT_PROMOTION_WAIT_MS, startHaRedisNode } from './redis-ha.js';
export type { HaRedisStart, NodeRole, StartHaRedisOptions } from './redis-ha.js';
