/**
 * startStack as end-to-end tests run it: the sources (these tests must not
 * depend on a fresh build; test/build.e2e.test.ts runs the compiled
 * services), ephemeral ports, a fast throwaway Postgres, in a temporary data
 * directory removed by `stop`; and the skip when the system binaries are not
 * installed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Context } from 'mocha';
import { findBinary } from '@lb/devtools/infra';
import { startStack, type Stack, type StartStackOptions } from '../../scripts/stack/stack.js';

/** What every stack needs on the machine. */
export const STACK_BINARIES = ['redis-server', 'redis-sentinel', 'postgres', 'initdb', 'nginx', 'nchan'] as const;

/** Skips the suite (from its `before`) when a binary is missing. */
export function skipUnlessInstalled(ctx: Context, binaries: readonly Parameters<typeof findBinary>[0][] = STACK_BINARIES): void {
  const missing = binaries.filter((b) => !findBinary(b));
  if (missing.length === 0) return;
  console.log(`      (skipped: ${missing.join(', ')} not installed; npm test installs them via scripts/bootstrap.mjs)`);
  ctx.skip();
}

export interface TestStack {
  stack: Stack;
  dataDir: string;
  /** Stops the stack and removes its data directory. */
  stop(): Promise<void>;
}

/** Starts a stack in a new temporary directory named after `prefix`; `opts` add to or override the test defaults. */
export async function startTestStack(prefix: string, opts: StartStackOptions = {}): Promise<TestStack> {
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  const remove = () => rmSync(dataDir, { recursive: true, force: true });
  try {
    const stack = await startStack({ dataDir, code: 'source', ports: 'ephemeral', postgresFast: true, ...opts });
    return {
      stack,
      dataDir,
      async stop() {
        await stack.stop();
        remove();
      },
    };
  } catch (e) {
    remove();
    throw e;
  }
}
