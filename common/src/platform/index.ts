/**
 * @lb/common/platform: the pieces every process runs on: configuration keys
 * and the shared settings, the topology loader, the logger, HTTP servers and
 * bodies, tokens, metrics, tracing, Postgres pools and the migrator, BullMQ
 * connection settings, the boards' control-plane repository and the process
 * lifecycle. It may use @lb/common/contracts; the contracts never use it.
 */
export * from './config.js';
export * from './settings.js';
export * from './topology.js';
export * from './logger.js';
export * from './http.js';
export * from './jwt.js';
export * from './metrics.js';
export * from './tracing.js';
export * from './pg-pools.js';
export * from './migrate.js';
export * from './queue.js';
export * from './redis-clients.js';
export * from './boards-repo.js';
export * from './lifecycle.js';
export * from './lua-scripts.js';
export * from './outbox.js';
