/**
 * Test helpers. Import from `@lb/common/testing`; the mocha root hooks live in
 * `root-hooks.ts` and are loaded through `.mocharc.json`, not from here.
 */
export { findRepoRoot, getInfra, stopInfra, TEST_SHARD_IDS, uniqueId } from './harness.js';
export type { Infra } from './harness.js';
