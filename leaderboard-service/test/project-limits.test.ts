/**
 * Each project's own limits, from its tenant's plan (sql/010_plans.sql):
 * a write bucket per shard in the write script, reads per second counted
 * across replicas, and a share of the shard's backlog. A project that
 * floods is refused while another project on the same shards, in the same
 * second, is served in full (the noisy neighbour).
 */
import { expect } from 'chai';
import { uniqueId } from '@lb/devtools/testing';
import { ApiKeysRepo } from '../src/db/api-keys-repo.js';
import { Client, startService, type Reply, type TestService } from './support/service.js';

const tid = (p: string) => uniqueId(p).toLowerCase().replace(/[^a-z0-9_-]/g, '');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A tenant on `plan` with one project `live`, its keys, and player alice (region EU: every such project's alice is on the same shard). */
interface Game {
  tenant: string;
  client: string;
  server: string;
}

async function setUp(svc: TestService, n: number, plan: string) {
  const api = new Client(svc.url);
  const platform = (await new ApiKeysRepo(svc.deps.pools, svc.deps.router.shards[0]!.id).create('limits tests')).key;
  const call = (method: string, path: string, key: string, body?: unknown): Promise<Reply> => api.request(method, path, { ...(body !== undefined && { body }), headers: { 'x-api-key': key } });
  const ok = async (r: Promise<Reply>) => {
    const x = await r;
    expect(x.status, JSON.stringify(x.body)).to.be.oneOf([200, 201]);
    return x.body;
  };
  const games: Game[] = [];
  for (let i = 0; i < n; i++) {
    const tenant = tid(`lim${i}`);
    await ok(call('POST', '/admin/tenants', platform, { id: tenant, name: tenant, plan }));
    await ok(call('POST', `/admin/projects?tenant=${tenant}`, platform, { id: 'live', name: 'Live' }));
    const key = async (kind: string) => (await ok(call('POST', `/admin/keys?tenant=${tenant}`, platform, { kind, name: kind, project: 'live' }))).key as string;
    const game = { tenant, client: await key('client'), server: await key('server') };
    await ok(call('POST', '/auth/register', game.client, { user_id: 'alice', name: 'Alice', region: 'EU', password: 'correct horse' }));
    games.push(game);
  }
  return { api, platform, call, games };
}

describe('project limits from the plan', function () {
  this.timeout(60_000);

  describe('write and read buckets', () => {
    let svc: TestService;
    let ctx: Awaited<ReturnType<typeof setUp>>;
    before(async () => {
      svc = await startService();
      // Plan free: 20 writes a second per shard, 100 reads a second.
      ctx = await setUp(svc, 2, 'free');
    });
    after(async () => svc?.stop());

    const write = (g: Game, score: number) => ctx.call('POST', '/boards/main/scores', g.server, { user_id: 'alice', score });
    const read = (g: Game) => ctx.call('GET', '/boards/main/top?region=EU&limit=5', g.client);

    it('when one project floods writes, then it gets 429 project_rate_limited while another project on the same shard has every write of that second accepted', async () => {
      const [noisy, quiet] = ctx.games as [Game, Game];
      const [flood, calm] = await Promise.all([Promise.all(Array.from({ length: 60 }, (_, i) => write(noisy, i + 1))), Promise.all(Array.from({ length: 10 }, (_, i) => write(quiet, i + 1)))]);
      expect(calm.map((r) => r.status), 'the quiet project').to.deep.equal(Array(10).fill(200));
      const refused = flood.filter((r) => r.status !== 200);
      expect(refused.length, 'the noisy project is refused past its plan').to.be.greaterThan(0);
      expect(flood.length - refused.length, 'and served up to it').to.be.greaterThan(0);
      for (const r of refused) {
        expect(r.status).to.equal(429);
        expect(r.body.error).to.equal('project_rate_limited');
        expect(r.body.retry_after).to.be.at.least(1);
        expect(r.headers.get('retry-after')).to.equal(String(r.body.retry_after));
      }
      // The default project (no key) is not the noisy one's either.
      const token = await ctx.api.register(uniqueId('dflt'), 'EU');
      expect((await ctx.api.post('/score/add', { delta: 1 }, { token })).status).to.equal(200);
    });

    it('when one project floods reads, then it gets 429 project_rate_limited while another project reads in full, and the flooder reads again in the next second', async () => {
      const [noisy, quiet] = ctx.games as [Game, Game];
      const [flood, calm] = await Promise.all([Promise.all(Array.from({ length: 150 }, () => read(noisy))), Promise.all(Array.from({ length: 20 }, () => read(quiet)))]);
      expect(calm.map((r) => r.status), 'the quiet project').to.deep.equal(Array(20).fill(200));
      const refused = flood.filter((r) => r.status !== 200);
      expect(refused.length).to.be.greaterThan(0);
      expect(new Set(refused.map((r) => `${r.status} ${r.body.error}`))).to.deep.equal(new Set(['429 project_rate_limited']));
      // A read that is not a flood: the next window.
      let again: Reply | undefined;
      for (let i = 0; i < 30 && again?.status !== 200; i++) {
        await sleep(100);
        again = await read(noisy);
      }
      expect(again?.status).to.equal(200);
      // Reads through the express app count too (the boards list, history).
      expect((await ctx.call('GET', '/boards', quiet.client)).status).to.equal(200);
    });

    it('when the platform raises a tenant\'s plan, then its projects get the new limits once the replicas\' tenant cache (API_KEY_CACHE_MS, under a second) has turned over', async () => {
      const [noisy] = ctx.games as [Game];
      const patched = await ctx.call('PATCH', `/admin/tenants/${noisy.tenant}`, ctx.platform, { plan: 'pro' });
      expect(patched.status).to.equal(200);
      await sleep(svc.deps.credentials.cacheLifeMs + 100);
      const burst = await Promise.all(Array.from({ length: 60 }, (_, i) => write(noisy, 1000 + i)));
      expect(burst.map((r) => r.status)).to.deep.equal(Array(60).fill(200));
      // An unknown plan is a 400 naming the field, not a 500.
      const unknown = await ctx.call('PATCH', `/admin/tenants/${noisy.tenant}`, ctx.platform, { plan: 'platinum' });
      expect(unknown.status).to.equal(400);
      expect(unknown.body).to.include({ error: 'invalid_payload', field: 'plan' });
      const plans = await ctx.call('GET', '/admin/plans', ctx.platform);
      expect(plans.body.plans.find((p: { id: string }) => p.id === 'free')).to.include({ writes_per_s: 20, reads_per_s: 100 });
    });
  });

  describe('no backlog limit at all', () => {
    let svc: TestService;
    let ctx: Awaited<ReturnType<typeof setUp>>;
    before(async () => {
      svc = await startService({ QUEUE_REJECT_LENGTH: '0' });
      ctx = await setUp(svc, 1, 'free');
    });
    after(async () => svc?.stop());

    it('when QUEUE_REJECT_LENGTH is 0 (never refuse), then a project on a plan with a backlog share is not refused either', async () => {
      const [game] = ctx.games as [Game];
      for (let i = 1; i <= 5; i++) {
        const r = await ctx.call('POST', '/boards/main/scores', game.server, { user_id: 'alice', score: i });
        expect(r.status, JSON.stringify(r.body)).to.equal(200);
      }
    });
  });

  describe('backlog share', () => {
    let svc: TestService;
    let ctx: Awaited<ReturnType<typeof setUp>>;
    before(async () => {
      // No worker persists this service's events: its backlog only grows. Plan free: 5% of 100 = 5 events a project.
      svc = await startService({ QUEUE_REJECT_LENGTH: '100' });
      ctx = await setUp(svc, 2, 'free');
    });
    after(async () => svc?.stop());

    it('when a project\'s events waiting to be persisted reach its plan\'s share of the backlog, then its writes get 429 queue_full while another project still writes; once they are persisted it writes again', async () => {
      const [full, other] = ctx.games as [Game, Game];
      const store = svc.deps.stores.get(svc.deps.router.homeShard('alice', 'EU').id);
      const countOf = async (g: Game) => Number((await store.client.hGet(store.keys.outboxProjects, `${g.tenant}/live`)) ?? 0);
      expect(await countOf(full), "the registration's event").to.equal(1);
      let refusal: Reply | undefined;
      let accepted = 0;
      for (let i = 1; i <= 10 && !refusal; i++) {
        const r = await ctx.call('POST', '/boards/main/scores', full.server, { user_id: 'alice', score: i });
        if (r.status === 200) accepted++;
        else refusal = r;
      }
      expect(accepted, 'writes until the share (5) is reached').to.equal(4);
      expect(refusal?.status).to.equal(429);
      expect(refusal?.body).to.include({ error: 'queue_full', queue_length: 5, retry_after: 1 });
      expect(await countOf(full)).to.equal(5);
      expect((await ctx.call('POST', '/boards/main/scores', other.server, { user_id: 'alice', score: 7 })).status, 'the other project').to.equal(200);
      // Persisted: the worker settles them (the settle script, which ShardStore.dropOutbox runs too).
      const ids = (await store.client.hKeys(store.keys.outbox)).filter((id) => id.startsWith(`${full.tenant}/live/`));
      expect(ids).to.have.length(5);
      await store.dropOutbox(ids);
      await store.dropOutbox(ids); // settled twice (a retried job): counted once
      expect(await countOf(full)).to.equal(0);
      expect(await store.client.hGet(store.keys.outboxProjects, `${full.tenant}/live`), 'an emptied count is removed').to.equal(null);
      expect((await ctx.call('POST', '/boards/main/scores', full.server, { user_id: 'alice', score: 99 })).status).to.equal(200);
      expect(await countOf(full)).to.equal(1);
      expect(await countOf(other)).to.equal(2);
    });
  });
});
