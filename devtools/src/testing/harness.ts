/**
 * The shared test infrastructure: three private Redis servers and one private
 * Postgres server (three databases), started once per test process on
 * ephemeral ports and torn down by the root `afterAll` hook (root-hooks.ts).
 *
 * Nothing here touches the machine's own Redis/Postgres or the default local
 * topology ports, so tests can run next to `npm start` and each other.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Topology } from '@lb/common/contracts';
import { migrateTopology, topologyJson, validateTopology } from '@lb/common/platform';
import { ensureBinaries } from '../infra/binaries.js';
import { addEmergencyCleanup, killChildrenOnSignals } from '../infra/child.js';
import { startPostgres, type PostgresProcess } from '../infra/postgres.js';
import { startRedis, type RedisProcess } from '../infra/redis-server.js';

/** Shard ids of the test topology, in the order of {@link Infra.redis}. */
export const TEST_SHARD_IDS = ['na', 'eu', 'asia'] as const;

/** The running test infrastructure. */
export interface Infra {
  /** Shards na, eu, asia (Redis per shard, databases lb_<id>); regions NA→na, EU→eu, ASIA→asia. */
  readonly topology: Topology;
  /** One server per shard, in {@link TEST_SHARD_IDS} order. */
  readonly redis: readonly RedisProcess[];
  readonly postgres: PostgresProcess;
  /** Absolute path of the monorepo root (the package.json with "workspaces"). */
  readonly repoRoot: string;
  /** Scratch directory holding all server data; removed by {@link stopInfra}. */
  readonly tmpDir: string;
  /**
   * Environment for spawning a service against this infrastructure: the
   * current environment, `TOPOLOGY` set to this topology (TOPOLOGY_FILE
   * removed so it cannot confuse anyone), then `extra`.
   */
  env(extra?: Record<string, string>): Record<string, string>;
}

let current: Promise<Infra> | undefined;
/** tmpDir → unregisters its emergency cleanup once stopInfra removed it properly. */
const unregisterCleanup = new Map<string, () => void>();

/**
 * Starts the test infrastructure on first call and returns the same instance
 * afterwards (memoised per process). A failed start is memoised too, so every
 * test fails fast with the same message instead of retrying a slow start.
 */
export function getInfra(): Promise<Infra> {
  current ??= start();
  return current;
}

/** Stops every server started by {@link getInfra} and deletes its temp dir. Safe to call repeatedly. */
export async function stopInfra(): Promise<void> {
  const pending = current;
  current = undefined;
  if (!pending) return;
  let infra: Infra;
  try {
    infra = await pending;
  } catch {
    return; // start() already cleaned up after itself
  }
  try {
    await teardown([...infra.redis], infra.postgres, infra.tmpDir);
  } finally {
    unregisterCleanup.get(infra.tmpDir)?.();
    unregisterCleanup.delete(infra.tmpDir);
  }
}


async function start(): Promise<Infra> {
  // Fail with the install command rather than a spawn ENOENT.
  await ensureBinaries(['redis-server', 'postgres', 'initdb'], { install: false });
  // Node does not run 'exit' handlers when a signal kills it; without this a
  // `kill <pid>` of the test run would leave the servers behind.
  killChildrenOnSignals();
  const repoRoot = findRepoRoot();
  const tmpDir = mkdtempSync(join(tmpdir(), 'lb-test-'));
  // mkdtemp makes it 0700; when we are root, Postgres runs as the postgres
  // user and must be able to traverse it to reach its data directory.
  chmodSync(tmpDir, 0o755);
  // If the process dies without stopInfra (crash, signal, process.exit in a
  // test), the servers are SIGKILLed first and then their data goes too.
  const unregister = addEmergencyCleanup(() => rmSync(tmpDir, { recursive: true, force: true }));
  unregisterCleanup.set(tmpDir, unregister);
  // Recorded as each server comes up, so a failure elsewhere can stop them.
  const redis: RedisProcess[] = [];
  let postgres: PostgresProcess | undefined;
  try {
    const redisStarts = TEST_SHARD_IDS.map((id) =>
      startRedis({ dir: join(tmpDir, `redis-${id}`), name: `redis-${id}` }).then((r) => {
        redis.push(r);
        return r;
      }),
    );
    const pgStart = startPostgres({ dataDir: join(tmpDir, 'pg'), fast: true }).then((p) => (postgres = p));
    // allSettled, not all: on a failure we must wait for the siblings to
    // finish starting before we can stop them.
    const settled = await Promise.allSettled([...redisStarts, pgStart]);
    const failure = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;
    const servers = await Promise.all(redisStarts);
    const pgProcess = await pgStart;
    const topology = validateTopology(
      {
        shards: TEST_SHARD_IDS.map((id, i) => ({
          id,
          redis: servers[i]!.url,
          postgres: pgProcess.urlFor(`lb_${id}`),
        })),
        regions: { NA: 'na', EU: 'eu', ASIA: 'asia' },
      },
      'test topology',
    );
    await Promise.all(TEST_SHARD_IDS.map((id) => pgProcess.ensureDatabase(`lb_${id}`)));
    await migrateTopology(topology, join(repoRoot, 'sql'));
    const topologyText = topologyJson(topology);
    return Object.freeze({
      topology,
      redis: Object.freeze([...servers]),
      postgres: pgProcess,
      repoRoot,
      tmpDir,
      env(extra: Record<string, string> = {}): Record<string, string> {
        const env: Record<string, string> = {};
        for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
        delete env.TOPOLOGY_FILE;
        // Processes a test spawns would all claim their service's default metrics port: off unless asked for.
        return { ...env, TOPOLOGY: topologyText, METRICS_PORT: '0', ...extra };
      },
    });
  } catch (e) {
    await teardown(redis, postgres, tmpDir).catch(() => undefined);
    unregister();
    unregisterCleanup.delete(tmpDir);
    throw e;
  }
}

async function teardown(redis: RedisProcess[], postgres: PostgresProcess | undefined, tmpDir: string): Promise<void> {
  const results = await Promise.allSettled([...redis.map((r) => r.stop()), postgres?.stop()]);
  rmSync(tmpDir, { recursive: true, force: true });
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/**
 * The monorepo root: the nearest ancestor of `from` (default: this file's
 * directory) whose package.json declares "workspaces".
 */
export function findRepoRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { workspaces?: unknown }).workspaces) return dir;
      } catch {
        // An unreadable package.json is not the root; keep walking.
      }
    }
    if (dir === dirname(dir)) throw new Error(`no package.json with "workspaces" above ${from}`);
  }
}

let counter = 0;
const MAX_ID_LENGTH = 40;

/**
 * A short id unique across tests and concurrent test processes, for naming
 * test data (users, boards, queues): `<prefix>-<time><counter><random>`,
 * characters `[A-Za-z0-9_.-]` only, at most 40 characters (the prefix is
 * sanitised and shortened as needed).
 */
export function uniqueId(prefix = 't'): string {
  const suffix = `${Date.now().toString(36)}${(counter++).toString(36)}${randomBytes(3).toString('hex')}`;
  const clean = prefix.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, MAX_ID_LENGTH - 1 - suffix.length);
  return clean ? `${clean}-${suffix}` : suffix;
}
