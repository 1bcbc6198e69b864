/**
 * @lb/common/contracts: what the processes of the platform (and its scripts,
 * tests and page) agree on, as pure code: error codes and the error type,
 * board definitions and order maths, periods, the shard router, Redis key
 * names, score events and their queue payloads, input checks and the public
 * route table. Nothing here does I/O, reads the environment or imports
 * platform code; common/test/contracts.test.ts holds that.
 */
export * from './errors.js';
export * from './events.js';
export * from './keys.js';
export * from './queue.js';
export * from './ranking.js';
export * from './shard-router.js';
export * from './topology.js';
export * from './routes.js';
export * from './tenancy.js';
export * from './usage.js';
export * as validate from './validate.js';
export * from './boards/index.js';
