/**
 * The usage rollup (worker-service usage/rollup.ts): the shards' hourly
 * counters copied into usage_hourly, idempotently (run twice, or by two
 * workers at once, it counts once), driven by a BullMQ job scheduler; the
 * usage answer is the same before and after, and stays exact from
 * Postgres alone once the live counters are gone.
 */
import { expect } from 'chai';
import { createLogger } from '@lb/common/platform';
import { uniqueId } from '@lb/devtools/testing';
import { ApiKeysRepo } from '../leaderboard-service/src/db/api-keys-repo.js';
import { Client, startService, type Reply, type TestService } from '../leaderboard-service/test/support/service.js';
import { UsageRollup } from '../worker-service/src/usage/rollup.js';

const tid = (p: string) => uniqueId(p).toLowerCase().replace(/[^a-z0-9_-]/g, '');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the usage rollup', function () {
  this.timeout(60_000);
  let svc: TestService;
  let api: Client;
  const rollups: UsageRollup[] = [];
  before(async () => {
    svc = await startService({ USAGE_FLUSH_MS: '200' });
    api = new Client(svc.url);
  });
  after(async () => {
    await Promise.all(rollups.map((r) => r.close()));
    await svc?.stop();
  });
  const rollup = () => {
    const r = new UsageRollup({ topology: svc.topology, pools: svc.deps.pools, log: createLogger('rollup-test', 'warn') }, { keyPrefix: svc.config.keyPrefix, everyMs: 200, graceMs: 0 });
    rollups.push(r);
    return r;
  };

  it('when two workers roll the same counters up twice at once, then usage_hourly counts them once, the answer is the same before and after, and it stays exact once the live counters are gone; a job scheduler runs it', async () => {
    const platform = (await new ApiKeysRepo(svc.deps.pools, svc.deps.router.shards[0]!.id).create('rollup tests')).key;
    const call = (method: string, path: string, key: string, body?: unknown): Promise<Reply> => api.request(method, path, { ...(body !== undefined && { body }), headers: { 'x-api-key': key } });
    const tenant = tid('roll');
    expect((await call('POST', '/admin/tenants', platform, { id: tenant, name: tenant, plan: 'pro' })).status).to.equal(201);
    expect((await call('POST', `/admin/projects?tenant=${tenant}`, platform, { id: 'live', name: 'Live' })).status).to.equal(201);
    const client = (await call('POST', `/admin/keys?tenant=${tenant}`, platform, { kind: 'client', name: 'c', project: 'live' })).body.key as string;
    const admin = (await call('POST', `/admin/keys?tenant=${tenant}`, platform, { kind: 'admin', name: 'a' })).body.key as string;
    for (const [i, u] of ['ann', 'bob', 'cyd', 'dan'].entries()) {
      expect((await call('POST', '/auth/register', client, { user_id: u, name: u, region: ['EU', 'NA', 'ASIA', 'GLOBAL'][i], password: 'correct horse' })).status).to.equal(201);
    }
    for (let i = 0; i < 5; i++) expect((await call('GET', '/boards/main/top', client)).status).to.equal(200);
    await sleep(600);
    const day = new Date().toISOString().slice(0, 10);
    const usage = async () => ((await call('GET', `/admin/usage?from=${day}&to=${day}`, admin)).body.rows as { project: string | null }[]).filter((r) => r.project === 'live');
    const live = await usage();
    expect(live).to.have.length(1);
    expect(live[0]).to.include({ writes: 4, reads: 5 });

    const [a, b] = [rollup(), rollup()];
    await Promise.all([a.run(), b.run(), a.run(), b.run()]);
    const rows = await svc.deps.pools.inScope(svc.deps.router.shards[0]!.id, { tenant }, (c) =>
      c.query<{ kind: string; n: string }>("SELECT kind, sum(count)::text AS n FROM usage_hourly WHERE tenant_id = $1 AND project_id = 'live' AND kind <> 'admin' GROUP BY kind ORDER BY kind", [tenant]),
    );
    expect(rows.rows).to.deep.equal([
      { kind: 'read', n: '5' },
      { kind: 'write', n: '4' },
    ]);
    expect(await usage(), 'the same answer after the rollup').to.deep.equal(live);

    // The live counters gone (expired): the answer comes from Postgres alone, unchanged.
    for (const s of svc.deps.stores.all()) {
      const hours = await s.client.zRange(s.keys.usage.hours, 0, -1);
      for (const h of hours) await s.client.del(s.keys.usage.counts(h, tenant));
    }
    expect(await usage(), 'from Postgres alone').to.deep.equal(live);

    // The scheduler: started, it is registered and runs the rollup on its own.
    const scheduled = rollup();
    await scheduled.start();
    const q = (scheduled as unknown as { queue: { getJobSchedulers(): Promise<{ key: string }[]> } }).queue;
    expect((await q.getJobSchedulers()).map((s) => s.key)).to.include('usage-rollup');
  });
});
