import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { ScoreEvent, ShardDef } from '@lb/common/contracts';
import { SOURCE_NODE_ARGS } from '@lb/devtools/infra';
import { getInfra, type Infra } from '@lb/devtools/testing';
import { idle, ShardDb, ShardQueue, uniquePrefix, waitFor } from './support/worker.js';
import { rng } from '../../test/support/reference-board.js';

/** A worker-service child process, with its stderr kept for failure messages. */
interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  log(): string;
}

/**
 * The worker-service as a real process: thousands of events for hundreds of
 * players (several versions each, shuffled, some sent twice), a SIGKILL while
 * batches are in flight, a restart with two processes sharing the queues, a
 * graceful stop of one of them. Afterwards every player's row must be their
 * newest event and every (user_id, version) must be logged exactly once.
 */
describe('worker-service crash and restart (child processes)', function () {
  this.timeout(120_000);
  const PLAYERS = 450;
  const VERSIONS = 8;
  let infra: Infra;
  let keyPrefix: string;
  const children: Child[] = [];
  const queues = new Map<string, ShardQueue>();
  const db = new ShardDb();

  before(async () => {
    infra = await getInfra();
    keyPrefix = uniquePrefix();
    for (const shard of infra.topology.shards) queues.set(shard.id, new ShardQueue(shard, keyPrefix, { attempts: 10, backoffMs: 100 }));
  });

  after(async () => {
    for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
    await Promise.all(children.map((c) => c.exited));
    await Promise.all([...queues.values()].map((q) => q.destroy()));
    await db.close();
  });

  function spawnWorker(name: string): Child {
    const proc = spawn(process.execPath, [...SOURCE_NODE_ARGS, join(infra.repoRoot, 'worker-service/src/index.ts')], {
      cwd: infra.repoRoot,
      env: infra.env({
        KEY_PREFIX: keyPrefix,
        LOG_LEVEL: 'info', // start and stop lines only; nothing per job
        BATCH_SIZE: '150',
        BATCH_MAX_WAIT_MS: '20',
        // A crashed worker's jobs come back after ~2 s instead of 30 s.
        WORKER_LOCK_MS: '2000',
        WORKER_STALLED_INTERVAL_MS: '1000',
        WORKER_MAX_STALLED: '20',
        PG_POOL_SIZE: '3',
        HEALTH_PORT: '',
      }),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-20_000);
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      proc.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const child = { name, proc, exited, log: () => stderr };
    children.push(child);
    return child;
  }

  async function totals(): Promise<Record<string, number>> {
    const sum: Record<string, number> = {};
    for (const q of queues.values()) for (const [k, v] of Object.entries(await q.counts())) sum[k] = (sum[k] ?? 0) + v;
    return sum;
  }

  /** score_events rows of this test's players, over every shard. */
  async function persisted(): Promise<number> {
    let n = 0;
    for (const shard of infra.topology.shards) {
      const r = await db.pool(shard).query('SELECT count(*)::int AS n FROM score_events WHERE user_id LIKE $1', [`${keyPrefix}-p%`]);
      n += r.rows[0].n as number;
    }
    return n;
  }

  async function started(c: Child): Promise<void> {
    await waitFor(`${c.name} to start`, () => c.log().includes('"msg":"started"') || c.proc.exitCode !== null, 30_000);
    expect(c.proc.exitCode, `${c.name} exited early:\n${c.log()}`).to.equal(null);
  }

  it('when a worker is SIGKILLed mid-batch and restarted (two processes for a while), then every player ends at the newest event and each event is logged once', async () => {
    const random = rng(424242);
    const regions: Record<string, string> = { na: 'NA', eu: 'EU', asia: 'ASIA' };
    const shards = infra.topology.shards;
    const byShard = new Map<string, ScoreEvent[]>(shards.map((s) => [s.id, []]));
    const newest = new Map<string, ScoreEvent>();
    for (let p = 0; p < PLAYERS; p++) {
      const shard = shards[p % shards.length]!;
      const user_id = `${keyPrefix}-p${p}`;
      let score = Math.floor(random() * 1000);
      for (let version = 1; version <= VERSIONS; version++) {
        const delta = Math.floor(random() * 50) - 10;
        score = Math.max(0, score + delta);
        const e: ScoreEvent = {
          user_id,
          name: `Player ${p} v${version}`,
          region: regions[shard.id]!,
          op: version === 1 ? 'register' : 'add',
          delta,
          score,
          version,
          ts: 1_760_000_000_000 + p * 1000 + version,
          request_id: `req-${p}-${version}`,
        };
        byShard.get(shard.id)!.push(e);
        newest.set(user_id, e);
      }
    }
    const shuffle = <T>(xs: T[]): T[] => {
      for (let i = xs.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [xs[i], xs[j]] = [xs[j]!, xs[i]!];
      }
      return xs;
    };
    const waves = new Map<string, [ScoreEvent[], ScoreEvent[]]>();
    for (const [id, events] of byShard) {
      const all = shuffle([...events]);
      const half = Math.floor(all.length / 2);
      // Wave 2 also re-sends a tenth of wave 1: duplicates must be harmless.
      waves.set(id, [all.slice(0, half), [...all.slice(half), ...all.slice(0, Math.floor(half / 10))]]);
    }

    // Phase 1: one worker, killed with SIGKILL while it holds jobs.
    for (const [id, [first]] of waves) await queues.get(id)!.add(first);
    const a = spawnWorker('worker-a');
    await started(a);
    const wave1 = [...waves.values()].reduce((n, [first]) => n + first.length, 0);
    await waitFor('worker-a to commit part of wave 1 and hold more', async () => {
      const t = await totals();
      return t.active! > 0 && t.waiting! > 0 && (await persisted()) >= wave1 * 0.15;
    }, 30_000, 5);
    a.proc.kill('SIGKILL');
    expect((await a.exited).signal).to.equal('SIGKILL');
    const orphaned = (await totals()).active!;
    expect(orphaned, 'jobs held by the killed worker').to.be.greaterThan(0);

    // Phase 2: two workers on the same queues, more events (and duplicates) arrive.
    const b = spawnWorker('worker-b');
    const c = spawnWorker('worker-c');
    await Promise.all([started(b), started(c)]);
    for (const [id, [, second]] of waves) await queues.get(id)!.add(second);
    await waitFor('the orphaned jobs to be recovered and progress made', async () => {
      const t = await totals();
      return t.active! + t.waiting! < orphaned + PLAYERS * VERSIONS * 0.3;
    }, 30_000);

    // Phase 3: one of them stops gracefully, the other finishes the work.
    c.proc.kill('SIGTERM');
    expect(await c.exited, c.log()).to.deep.equal({ code: 0, signal: null });
    await waitFor('all queues to drain', async () => (await Promise.all([...queues.values()].map(idle))).every(Boolean), 60_000, 100);
    b.proc.kill('SIGTERM');
    expect(await b.exited, b.log()).to.deep.equal({ code: 0, signal: null });

    expect(await totals()).to.include({ waiting: 0, active: 0, delayed: 0, failed: 0, completed: 0 });
    for (const shard of shards as readonly ShardDef[]) {
      const events = byShard.get(shard.id)!;
      const ids = [...new Set(events.map((e) => e.user_id))];
      const rows = await db.leaderboard(shard, ids);
      expect(rows.size).to.equal(ids.length);
      for (const id of ids) {
        const e = newest.get(id)!;
        expect(rows.get(id), id).to.deep.equal({ user_id: id, name: e.name, region: e.region, score: e.score, version: e.version, updated_ms: e.ts });
      }
      const logged = await db.events(shard, ids);
      expect(logged.map((r) => `${r.user_id}#${r.version}`)).to.have.members(events.map((e) => `${e.user_id}#${e.version}`));
      expect(logged).to.have.length(events.length);
    }
  });
});
