/**
 * Mocha root hook plugin, loaded via `require` in `.mocharc.cjs` (mocha
 * imports it as ESM through tsx and picks up the `mochaHooks` export).
 * Infrastructure starts lazily in the tests that call `getInfra()`, so runs
 * that never need it pay nothing; this only guarantees the teardown.
 */
import type { Context, RootHookObject } from 'mocha';
import { stopInfra } from './harness.js';

/** Root hooks: stop the shared test infrastructure after the last test. */
export const mochaHooks: RootHookObject = {
  async afterAll(this: Context) {
    // Shutting Postgres down cleanly can take longer than a test's timeout.
    this.timeout(120_000);
    await stopInfra();
  },
};
