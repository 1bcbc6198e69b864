/** The worker's data access: the only module that talks to Postgres. */
export { PgPools, type PoolOptions } from './pools.js';
export { InvalidBatchError, ScoreRepository, type ApplyResult } from './score-repository.js';
