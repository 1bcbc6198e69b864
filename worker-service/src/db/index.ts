/** The worker's data access: the only module that talks to Postgres. */
export { InvalidBatchError, ScoreRepository, type ApplyResult } from './score-repository.js';
