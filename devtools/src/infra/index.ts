/**
 * Local infrastructure for tests and the local topology: finding/installing
 * system servers and running private Redis and Postgres processes.
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
export { killRedis, pingRedis, redisCommand, startRedis } from './redis-server.js';
export type { RedisProcess, RedisReply, StartRedisOptions } from './redis-server.js';
