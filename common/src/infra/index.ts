/**
 * Local infrastructure for tests and the local topology: finding/installing
 * system servers, running private Redis and Postgres processes, and applying
 * SQL migrations. Node-only; services import it only from scripts and tests.
 */
export { DEBIAN_PACKAGES, ensureBinaries, findBinary, isBinaryName } from './binaries.js';
export type { BinaryName, EnsureBinariesOptions } from './binaries.js';
export { killChildrenOnSignals, killTrackedChildrenSync } from './child.js';
export { applyMigrations, listMigrations, migrateTopology } from './migrate.js';
export type { DatabaseMigrationResult, MigrationFile } from './migrate.js';
export { freePort } from './ports.js';
export { ensureDatabase, PG_SUPERUSER, redactUrl, startPostgres } from './postgres.js';
export type { PostgresProcess, StartPostgresOptions } from './postgres.js';
export { killRedis, pingRedis, redisCommand, startRedis } from './redis-server.js';
export type { RedisProcess, RedisReply, StartRedisOptions } from './redis-server.js';
