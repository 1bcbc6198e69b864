import { expect } from 'chai';
import type { Redis } from 'ioredis';
import { jobIdOf, SCORE_JOB, scoreJob, shardKeys, type ScoreEvent, type ShardDef, type Topology } from '@lb/common/contracts';
import { createLogger } from '@lb/common/platform';
import { getInfra, uniqueId } from '@lb/devtools/testing';
import type { WorkerConfig } from '../src/config.js';
import { startHealthServer } from '../src/health.js';
import { startWorkerService, type ServiceOptions, type WorkerService } from '../src/service.js';
import { idle, scoreEvent, ShardDb, ShardQueue, testConfig, waitFor } from './support/worker.js';

const REGION_OF: Record<string, string> = { na: 'NA', eu: 'EU', asia: 'ASIA' };

describe('worker-service consuming the shard queues (in-process)', function () {
  this.timeout(60_000);
  let topology: Topology;
  const db = new ShardDb();
  let service: WorkerService | undefined;
  let queues: ShardQueue[] = [];

  before(async () => {
    topology = (await getInfra()).topology;
  });

  afterEach(async () => {
    await service?.close();
    service = undefined;
    await Promise.all(queues.map((q) => q.destroy()));
    queues = [];
  });

  after(() => db.close());

  function queueOf(shard: ShardDef, config: WorkerConfig): ShardQueue {
    const q = new ShardQueue(shard, config.keyPrefix, { attempts: 3, backoffMs: 50 });
    queues.push(q);
    return q;
  }

  async function start(config: WorkerConfig, opts: ServiceOptions = {}): Promise<WorkerService> {
    service = await startWorkerService(config, { log: createLogger('test', 'silent'), ...opts });
    return service;
  }

  it('when events of many players arrive out of order on every shard, then Postgres holds each newest row and the queues drain with completed jobs removed', async () => {
    const config = await testConfig();
    const perShard = new Map<ShardDef, ScoreEvent[]>();
    for (const shard of topology.shards) {
      const events = Array.from({ length: 15 }, () => uniqueId(shard.id)).flatMap((user_id) =>
        [3, 1, 2].map((version) => scoreEvent({ user_id, version, region: REGION_OF[shard.id]! })),
      );
      perShard.set(shard, events);
      await queueOf(shard, config).add(events);
    }

    await start(config);
    await waitFor('queues to drain', async () => (await Promise.all(queues.map(idle))).every(Boolean));

    for (const [shard, events] of perShard) {
      const ids = [...new Set(events.map((e) => e.user_id))];
      const rows = await db.leaderboard(shard, ids);
      for (const id of ids) {
        const newest = events.find((e) => e.user_id === id && e.version === 3)!;
        expect(rows.get(id), id).to.deep.include({ version: 3, score: 30, name: newest.name, region: newest.region, updated_ms: newest.ts });
      }
      expect(await db.events(shard, ids)).to.have.length(events.length);
    }
    for (const q of queues) {
      expect(await q.counts()).to.include({ waiting: 0, active: 0, delayed: 0, failed: 0, completed: 0 });
      expect(await q.queue.getJob(jobIdOf(perShard.get(q.shard)![0]!))).to.equal(undefined);
    }
    expect(service!.status().shards.map((s) => s.jobs.persisted)).to.deep.equal([45, 45, 45]);
  });

  /** The shard's outbox as the leaderboard-service writes it: every event not yet persisted. */
  async function outboxOf(q: ShardQueue, config: WorkerConfig) {
    // BullMQ's client interface has no HINCRBY; its backend here is ioredis, which does.
    const client = (await q.queue.getBackend().client) as unknown as Redis;
    const keys = shardKeys(q.shard.id, config.keyPrefix);
    return {
      /** As the write script does: each event in the outbox, and its project's count raised. */
      put: async (events: readonly ScoreEvent[]) => {
        await client.hset(keys.outbox, Object.fromEntries(events.map((e) => [jobIdOf(e), JSON.stringify(e)])));
        for (const e of events) if (e.tenant !== undefined) await client.hincrby(keys.outboxProjects, `${e.tenant}/${e.project}`, 1);
      },
      ids: async () => Object.keys(await client.hgetall(keys.outbox)).sort(),
      counts: async () => client.hgetall(keys.outboxProjects),
    };
  }

  it('when events are persisted or refused for good, then the worker takes them off the shard\'s outbox (the backlog the service counts) and off their projects\' counts', async () => {
    const config = await testConfig({ WORKER_SHARDS: 'na' });
    const shard = topology.shards.find((s) => s.id === 'na')!;
    const q = queueOf(shard, config);
    const acme = uniqueId('acme').toLowerCase().replace(/[^a-z0-9]/g, '');
    const of = (tenant: string, project: string, over: Partial<ScoreEvent> = {}) => scoreEvent({ tenant, project, board: 'main', period: 'all', ...over });
    const events = [of('default', 'default'), of(acme, 'live'), of(acme, 'live', { name: 'nul\u0000byte' }) /* refused by Postgres */, of(acme, 'live'), of('default', 'default'), scoreEvent() /* from before projects */];
    const notQueued = of(acme, 'live');
    const outbox = await outboxOf(q, config);
    await outbox.put([...events, notQueued]);
    expect((await outbox.counts())[`${acme}/live`]).to.equal('4');
    await q.add(events);

    await start(config);
    await waitFor('queue to settle', () => idle(q));

    expect(await outbox.ids()).to.deep.equal([jobIdOf(notQueued)]);
    const counts = await outbox.counts();
    expect(counts[`${acme}/live`], 'the one event still in the outbox').to.equal('1');
  });


  it('when a job is malformed, then it is failed at once (attemptsMade 1) and the valid jobs persist', async () => {
    const config = await testConfig({ WORKER_SHARDS: 'eu' });
    const shard = topology.shards.find((s) => s.id === 'eu')!;
    const q = queueOf(shard, config);
    const good = [scoreEvent({ region: 'EU' }), scoreEvent({ region: 'EU' })];
    const bad = { ...scoreEvent({ region: 'EU' }), version: 'seven' };
    await q.add([good[0], bad, good[1]]);

    await start(config);
    await waitFor('queue to settle', () => idle(q));

    const failed = await q.queue.getFailed();
    expect(failed).to.have.length(1);
    expect(failed[0]!.data).to.deep.equal(bad);
    expect(failed[0]!.attemptsMade).to.equal(1);
    expect(failed[0]!.failedReason).to.match(/malformed score event: version must be an integer/);
    expect((await db.leaderboard(shard, good.map((e) => e.user_id))).size).to.equal(2);
    expect(service!.status().shards[0]!.jobs.deadLettered).to.equal(1);
  });

  it('when Postgres refuses one event, then only that job is failed at once and the rest of its batch persists', async () => {
    const config = await testConfig({ WORKER_SHARDS: 'na', BATCH_MAX_WAIT_MS: '200' });
    const shard = topology.shards.find((s) => s.id === 'na')!;
    const q = queueOf(shard, config);
    const events = Array.from({ length: 9 }, () => scoreEvent());
    events[4] = scoreEvent({ name: 'nul\u0000byte' }); // valid per contract, but Postgres text cannot hold NUL
    await q.add(events);

    await start(config);
    await waitFor('queue to settle', () => idle(q));

    const failed = await q.queue.getFailed();
    expect(failed.map((j) => [j.id, j.attemptsMade])).to.deep.equal([[jobIdOf(events[4]!), 1]]);
    expect(failed[0]!.failedReason).to.match(/^refused by postgres: /);
    expect((await db.leaderboard(shard, events.map((e) => e.user_id))).size).to.equal(8);
  });

  it('when a job carries an envelope of events, then all are persisted; a malformed one fails the job at once and the rest still persist', async () => {
    const config = await testConfig({ WORKER_SHARDS: 'na' });
    const shard = topology.shards.find((s) => s.id === 'na')!;
    const q = queueOf(shard, config);
    const good = Array.from({ length: 6 }, () => scoreEvent());
    const job = scoreJob(good);
    await q.queue.add(SCORE_JOB, job.data, { jobId: job.jobId });
    const mixed = [scoreEvent(), { ...scoreEvent(), score: -5 }, scoreEvent()];
    await q.queue.add(SCORE_JOB, { events: mixed }, { jobId: 'mixed+3' });

    await start(config);
    await waitFor('queue to settle', () => idle(q));

    expect((await db.leaderboard(shard, good.map((e) => e.user_id))).size).to.equal(6);
    const failed = await q.queue.getFailed();
    expect(failed.map((j) => [j.id, j.attemptsMade])).to.deep.equal([['mixed+3', 1]]);
    expect(failed[0]!.failedReason).to.match(/^malformed score event: event 1: score/);
    expect((await db.leaderboard(shard, [mixed[0]!.user_id, mixed[2]!.user_id])).size).to.equal(2);
  });

  it('when envelopes arrive, then each is written whole in one batch transaction (several of them share one up to BATCH_SIZE events, none is split), and each job completes once', async () => {
    const config = await testConfig({ WORKER_SHARDS: 'na', BATCH_SIZE: '100', BATCH_MAX_WAIT_MS: '200' });
    const shard = topology.shards.find((s) => s.id === 'na')!;
    const q = queueOf(shard, config);
    const envelopes = Array.from({ length: 5 }, () => Array.from({ length: 40 }, () => scoreEvent()));
    for (const events of envelopes) {
      const job = scoreJob(events);
      await q.queue.add(SCORE_JOB, job.data, { jobId: job.jobId });
    }
    const batches: string[][] = [];
    const svc = await start(config, {
      decorateRepository: (repo) => ({
        applyBatch(shardId, project, batch) {
          batches.push(batch.map((e) => e.user_id));
          return repo.applyBatch(shardId, project, batch);
        },
      }),
    });
    await waitFor('queue to settle', () => idle(q));

    const envelopeOf = new Map(envelopes.flatMap((events, i) => events.map((e) => [e.user_id, i] as const)));
    expect(batches.flat().sort()).to.deep.equal(envelopes.flat().map((e) => e.user_id).sort());
    for (const b of batches) {
      const whole = new Set(b.map((u) => envelopeOf.get(u)));
      expect(b.length, 'whole envelopes only').to.equal(40 * whole.size);
      expect(b.length).to.be.at.most(100);
    }
    expect(svc.status().shards[0]!.jobs).to.include({ persisted: 200, retried: 0, deadLettered: 0 });
    expect((await db.leaderboard(shard, envelopes.flat().map((e) => e.user_id))).size).to.equal(200);
  });

  it('when the shard\'s database does not exist (a fault, not an outage: 3D000), then jobs are retried with backoff and end in the failed set after their attempts', async () => {
    const broken: Topology = {
      ...topology,
      shards: topology.shards.map((s) => (s.id === 'asia' ? { ...s, postgres: s.postgres.replace(/\/[^/]+$/, '/lb_does_not_exist') } : s)),
    };
    const config = await testConfig({ WORKER_SHARDS: 'asia' }, broken);
    const shard = broken.shards.find((s) => s.id === 'asia')!;
    const q = queueOf(shard, config);
    const events = Array.from({ length: 5 }, () => scoreEvent({ region: 'ASIA' }));
    const outbox = await outboxOf(q, config);
    await outbox.put(events);
    await q.add(events);

    await start(config);
    // 3 attempts with 50 ms and 100 ms backoff in between.
    await waitFor('jobs to exhaust their attempts', async () => (await q.counts()).failed === 5, 20_000);
    // Dead-lettered events wait for replay-failed, not in the backlog.
    await waitFor('the outbox to empty', async () => (await outbox.ids()).length === 0);

    const failed = await q.queue.getFailed();
    expect(failed.map((j) => j.attemptsMade)).to.deep.equal([3, 3, 3, 3, 3]);
    expect(failed[0]!.failedReason).to.match(/lb_does_not_exist/);
    const status = service!.status().shards[0]!;
    expect(status.jobs).to.include({ persisted: 0, retried: 10, deferred: 0, deadLettered: 5 });
    expect(status.batches.failedBatches).to.be.at.least(3);
    const realShard = topology.shards.find((s) => s.id === 'asia')!;
    expect((await db.leaderboard(realShard, events.map((e) => e.user_id))).size).to.equal(0);
  });

  it('when /health is asked, then it answers each shard\'s state, counters and connectivity (503 when a Postgres is unreachable)', async () => {
    const broken: Topology = {
      ...topology,
      shards: topology.shards.map((s) => (s.id === 'eu' ? { ...s, postgres: s.postgres.replace(/\/[^/]+$/, '/lb_does_not_exist') } : s)),
    };
    const config = await testConfig({ WORKER_SHARDS: 'na,eu', INSTANCE_ID: 'worker-7' }, broken);
    const svc = await start(config);
    const health = await startHealthServer(svc, '127.0.0.1', 0);
    try {
      const res = await fetch(`http://127.0.0.1:${health.port}/health`);
      const body = (await res.json()) as { ok: boolean; instance: string; shards: { shard: string; state: string; redis: string; postgres: string; jobs: object }[] };
      expect(res.status).to.equal(503);
      expect(body.ok).to.equal(false);
      expect(body.instance).to.equal('worker-7');
      expect(body.shards.map((s) => [s.shard, s.state, s.redis, s.postgres.slice(0, 5)])).to.deep.equal([
        ['na', 'running', 'ok', 'ok'],
        ['eu', 'running', 'ok', 'error'],
      ]);
      expect(body.shards[0]!.jobs).to.deep.equal({ persisted: 0, retried: 0, deferred: 0, deadLettered: 0, stalled: 0 });
      expect((await fetch(`http://127.0.0.1:${health.port}/nope`)).status).to.equal(404);
    } finally {
      await health.close();
    }
  });

  it('when the worker is closed while a batch is being written, then close waits for its COMMIT and completes its jobs', async () => {
    const config = await testConfig({ WORKER_SHARDS: 'na' });
    const shard = topology.shards.find((s) => s.id === 'na')!;
    const q = queueOf(shard, config);
    const events = Array.from({ length: 25 }, () => scoreEvent());
    await q.add(events);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let writing = 0;
    const svc = await start(config, {
      decorateRepository: (repo) => ({
        async applyBatch(shardId, project, batch) {
          writing += batch.length;
          await gate;
          return repo.applyBatch(shardId, project, batch);
        },
      }),
    });
    await waitFor('the batch to be in hand', () => writing === 25);

    let closed = false;
    const closing = svc.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(closed, 'close must wait for the batch in hand').to.equal(false);
    expect(svc.status().shards[0]!.state).to.equal('closing');
    release();
    await closing;

    expect((await db.leaderboard(shard, events.map((e) => e.user_id))).size).to.equal(25);
    expect(await q.counts()).to.include({ waiting: 0, active: 0, failed: 0, completed: 0 });
    expect(svc.status().shards[0]!).to.deep.include({ state: 'closed', buffered: 0, flushing: 0 });
  });

  it('when two workers consume the same queue, then every event is persisted exactly once', async () => {
    const config = await testConfig({ WORKER_SHARDS: 'eu', BATCH_SIZE: '50' });
    const shard = topology.shards.find((s) => s.id === 'eu')!;
    const q = queueOf(shard, config);
    const events = Array.from({ length: 60 }, () => uniqueId('two')).flatMap((user_id) =>
      [1, 2, 3, 4].map((version) => scoreEvent({ user_id, version, region: 'EU' })),
    );
    const other = await startWorkerService(config, { log: createLogger('test', 'silent') });
    try {
      await start(config);
      await q.add(events.reverse());
      await waitFor('queue to drain', () => idle(q));
    } finally {
      await other.close();
    }
    const ids = [...new Set(events.map((e) => e.user_id))];
    const rows = await db.leaderboard(shard, ids);
    expect([...rows.values()].every((r) => r.version === 4)).to.equal(true);
    expect(rows.size).to.equal(60);
    expect(await db.events(shard, ids)).to.have.length(240);
    const persisted = service!.status().shards[0]!.jobs.persisted + other.status().shards[0]!.jobs.persisted;
    expect(persisted).to.equal(240);
  });
});
