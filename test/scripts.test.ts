import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { Worker, UnrecoverableError } from 'bullmq';
import { jobIdOf, queuePrefix, SCORE_QUEUE, shardKeys, type ShardDef } from '@lb/common/contracts';
import { connectionFor, createLogger, openRedis } from '@lb/common/platform';
import { SOURCE_NODE_ARGS } from '@lb/devtools/infra';
import { getInfra, type Infra } from '@lb/devtools/testing';
import { startWorkerService } from '../worker-service/src/service.js';
import { idle, scoreEvent, ShardDb, ShardQueue, testConfig, uniquePrefix, waitFor } from '../worker-service/test/support/worker.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a root script (`scripts/<name>.ts`) as `npm run <name>` would, against the harness. */
function runScript(infra: Infra, name: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...SOURCE_NODE_ARGS, join(infra.repoRoot, 'scripts', `${name}.ts`), ...args],
      { cwd: infra.repoRoot, env: infra.env(env), timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Fails `count` jobs of a queue at once (UnrecoverableError), the way a poisoned batch would. */
async function failJobs(shard: ShardDef, keyPrefix: string, count: number): Promise<void> {
  let failed = 0;
  const worker = new Worker(SCORE_QUEUE, async () => {
    throw new UnrecoverableError('postgres said no');
  }, { connection: connectionFor(shard.redis, true), prefix: queuePrefix(shard.id, keyPrefix), concurrency: 10 });
  worker.on('failed', () => failed++);
  try {
    await waitFor(`${count} jobs to fail`, () => failed >= count);
  } finally {
    await worker.close();
  }
}

describe('queue scripts (check-queue, replay-failed)', function () {
  this.timeout(90_000);
  let infra: Infra;
  let na: ShardDef;
  const queues: ShardQueue[] = [];
  const db = new ShardDb();

  before(async () => {
    infra = await getInfra();
    na = infra.topology.shards.find((s) => s.id === 'na')!;
  });

  after(async () => {
    await Promise.all(queues.map((q) => q.destroy()));
    await db.close();
  });

  function queueOn(shard: ShardDef, keyPrefix: string): ShardQueue {
    const q = new ShardQueue(shard, keyPrefix);
    queues.push(q);
    return q;
  }

  it('when check-queue --json runs, then it prints each shard\'s counts, oldest waiting age and first jobs as the queue holds them', async () => {
    const keyPrefix = uniquePrefix();
    const q = queueOn(na, keyPrefix);
    const doomed = [scoreEvent(), scoreEvent()];
    await q.add(doomed);
    await failJobs(na, keyPrefix, 2);
    const waiting = Array.from({ length: 7 }, (_, i) => scoreEvent({ version: i + 1 }));
    for (const e of waiting) await q.add([e]); // one by one: a known order
    await q.add([scoreEvent()], { delay: 60_000 });
    // The outbox as the service leaves it: 4 events not yet persisted, 1 of them not yet queued.
    const handle = openRedis(na.redis);
    await handle.connect();
    const redis = handle.client;
    try {
      const keys = shardKeys('na', keyPrefix);
      await redis.hSet(keys.outbox, Object.fromEntries(waiting.slice(0, 4).map((e) => [jobIdOf(e), JSON.stringify(e)])));
      await redis.zAdd(keys.outboxIndex, { score: Date.now(), value: jobIdOf(waiting[3]!) });
    } finally {
      await handle.close();
    }

    const r = await runScript(infra, 'check-queue', ['--json', '--limit', '3'], { KEY_PREFIX: keyPrefix });

    expect(r.code, r.stderr).to.equal(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.keyPrefix).to.equal(keyPrefix);
    expect(doc.shards.map((s: { shard: string }) => s.shard)).to.deep.equal(['na', 'eu', 'asia']);
    const report = doc.shards[0];
    expect(report.prefix).to.equal(queuePrefix('na', keyPrefix));
    expect(report.backlog).to.deep.equal({ events: 4, notQueued: 1 });
    expect(report.counts).to.deep.equal({ waiting: 7, active: 0, delayed: 1, prioritized: 0, failed: 2, completed: 0 });
    expect(report.oldestWaitingAgeMs).to.be.within(0, 60_000);
    expect(report.waiting.map((j: { id: string }) => j.id)).to.deep.equal(waiting.slice(0, 3).map(jobIdOf));
    expect(report.waiting[0].data).to.deep.include({ user_id: waiting[0]!.user_id, version: 1, op: 'update', score: 10 });
    expect(report.failed.map((j: { id: string }) => j.id).sort()).to.deep.equal(doomed.map(jobIdOf).sort());
    expect(report.failed[0]).to.include({ attemptsMade: 1, failedReason: 'postgres said no' });
    for (const other of doc.shards.slice(1)) {
      expect(other.backlog).to.deep.equal({ events: 0, notQueued: 0 });
      expect(other.counts).to.deep.equal({ waiting: 0, active: 0, delayed: 0, prioritized: 0, failed: 0, completed: 0 });
      expect(other.oldestWaitingAgeMs).to.equal(null);
    }

    const text = await runScript(infra, 'check-queue', ['--shard', 'na'], { KEY_PREFIX: keyPrefix });
    expect(text.code, text.stderr).to.equal(0);
    expect(text.stdout).to.match(/shard na/).and.to.match(/waiting 7 {2}active 0 {2}delayed 1/).and.not.to.match(/shard eu/);
    expect(text.stdout).to.match(/backlog: 4 events not yet in Postgres \(1 of them not yet on the queue\)/);
  });

  it('when check-queue gets a bad option or shard, then it prints the usage and exits 2', async () => {
    const bad = await runScript(infra, 'check-queue', ['--limit', 'many']);
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.match(/--limit must be a positive integer/).and.to.match(/usage: npm run check-queue/);
    const unknown = await runScript(infra, 'check-queue', ['--shard', 'mars']);
    expect(unknown.code).to.equal(2);
    expect(unknown.stderr).to.match(/unknown shard "mars"/);
  });

  it('when replay-failed moves failed jobs back to waiting, then a worker completes them and Postgres holds them', async () => {
    const keyPrefix = uniquePrefix();
    const q = queueOn(na, keyPrefix);
    const events = Array.from({ length: 4 }, () => scoreEvent());
    await q.add(events);
    await failJobs(na, keyPrefix, 4);
    const [first, ...rest] = events.map(jobIdOf);

    const usage = await runScript(infra, 'replay-failed', ['--id', first!], { KEY_PREFIX: keyPrefix });
    expect(usage.code).to.equal(2);
    expect(usage.stderr).to.match(/--shard ID or --all-shards is required/);

    const one = await runScript(infra, 'replay-failed', ['--shard', 'na', '--id', first!, '--id', 'nobody#1'], { KEY_PREFIX: keyPrefix });
    expect(one.code, 'a requested id was not found').to.equal(1);
    expect(one.stdout).to.include(`moved na ${first}\n`).and.to.include('not found nobody#1');
    expect(await q.counts()).to.include({ waiting: 1, failed: 3 });
    const moved = await q.queue.getJob(first!);
    expect(moved!.attemptsMade, 'attempts reset').to.equal(0);

    const all = await runScript(infra, 'replay-failed', ['--all-shards', '--json'], { KEY_PREFIX: keyPrefix });
    expect(all.code, all.stderr).to.equal(0);
    const doc = JSON.parse(all.stdout);
    expect(doc.moved.find((m: { shard: string }) => m.shard === 'na').ids.sort()).to.deep.equal([...rest].sort());
    expect(doc.notFound).to.deep.equal([]);
    expect(await q.counts()).to.include({ waiting: 4, failed: 0 });

    const config = await testConfig({ KEY_PREFIX: keyPrefix, WORKER_SHARDS: 'na' });
    const service = await startWorkerService(config, { log: createLogger('test', 'silent') });
    try {
      await waitFor('replayed jobs to complete', () => idle(q));
    } finally {
      await service.close();
    }
    expect(await q.counts()).to.include({ waiting: 0, failed: 0, completed: 0 });
    expect((await db.leaderboard(na, events.map((e) => e.user_id))).size).to.equal(4);
  });

  it('when run through npm\'s entry point, then the scripts are dispatched by bootstrap', async () => {
    const r = await new Promise<Run>((resolve) => {
      execFile(process.execPath, [join(infra.repoRoot, 'scripts', 'bootstrap.mjs'), 'replay-failed', '--help'], { cwd: infra.repoRoot, env: infra.env() }, (err, stdout, stderr) =>
        resolve({ code: err ? Number(err.code) : 0, stdout, stderr }),
      );
    });
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/usage: npm run replay-failed/);
  });
});
