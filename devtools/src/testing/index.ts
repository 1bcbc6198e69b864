/**
 * Test helpers. Import from `@lb/devtools/testing`; the mocha root hooks live in
 * `root-hooks.ts` and are loaded through `.mocharc.cjs`, not from here.
 */
export { findRepoRoot, getInfra, stopInfra, TEST_SHARD_IDS, uniqueId } from './harness.js';
export type { Infra } from './harness.js';
export { labelValues, parseMetrics, scrape, valueOf } from './metrics.js';
export type { Sample } from './metrics.js';
export { OUTAGES, startOutagePostgres } from './postgres-outage.js';
export { projectDb } from './project-db.js';
export type { ProjectDb } from './project-db.js';
export type { Outage, OutagePostgres } from './postgres-outage.js';
