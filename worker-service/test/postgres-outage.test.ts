/**
 * The worker during a Postgres outage (issue 17): jobs that find Postgres
 * unavailable go back to waiting without spending an attempt, so with
 * attempts that the old behaviour would have used up many times over,
 * nothing is dead-lettered, and every event is persisted once Postgres
 * accepts sessions again. On a PRIVATE Postgres (devtools
 * testing/postgres-outage.ts) so the outages do not touch the shared server.
 */
import { expect } from 'chai';
import { DEFAULT_PROJECT, periodAt, previousPeriod } from '@lb/common/contracts';
import { createLogger } from '@lb/common/platform';
import { OUTAGES, startOutagePostgres, uniqueId, type OutagePostgres } from '@lb/devtools/testing';
import { closeJobIdOf } from '../src/periods/jobs.js';
import { startWorkerService, type WorkerService } from '../src/service.js';
import { idle, scoreEvent, ShardDb, ShardQueue, testConfig, waitFor } from './support/worker.js';

describe('worker-service when Postgres is unavailable (private server)', function () {
  this.timeout(120_000);
  let pgx: OutagePostgres;
  let service: WorkerService | undefined;
  let q: ShardQueue | undefined;
  const db = new ShardDb();

  before(async () => {
    pgx = await startOutagePostgres();
  });

  afterEach(async () => {
    await service?.close();
    service = undefined;
    await q?.destroy();
    q = undefined;
  });

  after(async () => {
    await db.close();
    await pgx?.stop();
  });

  for (const outage of OUTAGES) {
    it(`when Postgres is in ${outage} while events arrive, then no job is failed or spends an attempt, and all are persisted after it`, async () => {
      const config = await testConfig({ WORKER_SHARDS: 'eu', JOB_BACKOFF_MS: '10' }, pgx.topology);
      const shard = pgx.topology.shards.find((s) => s.id === 'eu')!;
      // Two attempts 10 ms apart: the old behaviour dead-lettered these within milliseconds.
      q = new ShardQueue(shard, config.keyPrefix, { attempts: 2, backoffMs: 10 });
      service = await startWorkerService(config, { log: createLogger('test', 'silent') });
      const events = Array.from({ length: 5 }, () => scoreEvent({ region: 'EU' }));

      await pgx.start(outage);
      try {
        await q.add(events);
        const status = () => service!.status().shards[0]!.jobs;
        // Each job finds Postgres unavailable several times (more than its attempts), or (old behaviour) fails.
        await waitFor('jobs to be put back several times', async () => status().deferred >= 3 * events.length || (await q!.counts()).failed! > 0, 30_000);
        expect((await q.counts()).failed, 'failed set during the outage').to.equal(0);
        const pending = await q.queue.getJobs(['wait', 'active', 'delayed', 'prioritized']);
        expect(pending.map((j) => j.attemptsMade), 'attempts spent').to.deep.equal(events.map(() => 0));
        expect(status()).to.include({ persisted: 0, retried: 0, deadLettered: 0 });
      } finally {
        await pgx.restore();
      }

      await waitFor('the queue to drain after the outage', () => idle(q!), 30_000);
      expect((await q.counts()).failed).to.equal(0);
      const ids = events.map((e) => e.user_id);
      expect((await db.leaderboard(shard, ids)).size, 'rows persisted').to.equal(events.length);
      expect(await db.events(shard, ids)).to.have.length(events.length);
      expect(service.status().shards[0]!.jobs).to.include({ persisted: events.length, retried: 0, deadLettered: 0 });
    });
  }

  it('when a period close job finds the control database refusing sessions, then it is postponed without spending its one attempt and closes the period after the outage', async () => {
    const config = await testConfig({ WORKER_SHARDS: 'na', PERIOD_SYNC_MS: '200', PERIOD_GRACE_MS: '0' }, pgx.topology);
    const board = uniqueId('pgclose').toLowerCase();
    await pgx.query(
      'lb_na',
      `INSERT INTO boards (tenant_id, project_id, id, title, sort_order, operator, reset, tie_break, min_score, max_score, max_metadata_bytes, client_writes, allow_operator_override)
       VALUES ('default', 'default', $1, 'close test', 'desc', 'best', 'daily', 'shared', 0, 1000000, 0, true, true)`,
      [board],
    );
    const period = previousPeriod('daily', previousPeriod('daily', periodAt('daily', Date.now()))!)!.id;
    service = await startWorkerService(config, { log: createLogger('test', 'silent') });
    const queue = service.periods!.queue;
    const jobId = closeJobIdOf(DEFAULT_PROJECT, board, period);

    await pgx.start('refuse-connections');
    try {
      // One attempt: the old behaviour failed the close at once.
      await queue.add('close', { board, period }, { jobId, attempts: 1, removeOnComplete: true, removeOnFail: false });
      await waitFor('the close to be postponed (or failed)', async () => ['delayed', 'failed'].includes(await queue.getJobState(jobId)), 20_000);
      expect(await queue.getJobState(jobId)).to.equal('delayed');
      expect((await queue.getJob(jobId))!.attemptsMade).to.equal(0);
    } finally {
      await pgx.restore();
    }
    const closed = async () => (await pgx.query('lb_na', 'SELECT 1 FROM period_closes WHERE board = $1 AND period = $2', [board, period])).rowCount === 1;
    await waitFor('the period to be closed after the outage', closed, 20_000);
    expect(await queue.getFailedCount()).to.equal(0);
  });
});
