/**
 * GET /admin/stats (the live page's operator panel): per-shard backlog,
 * relay lag and this replica's write rate, behind the API key.
 */
import { expect } from 'chai';
import { uniqueId } from '@lb/devtools/testing';
import { RecentRate } from '../src/admin/stats.js';
import { ApiKeysRepo } from '../src/db/api-keys-repo.js';
import { Client, startService, type TestService } from './support/service.js';

describe('admin stats: RecentRate', () => {
  it('when events are counted over seconds, then the rate is the mean of the last whole seconds of the window, older ones forgotten', () => {
    let now = 1_000_000_000_000;
    const rate = new RecentRate(10, () => now);
    rate.add(5);
    // The current second is still being counted: not in the rate yet.
    expect(rate.perSecond()).to.equal(0);
    now += 1000;
    rate.add(15);
    expect(rate.perSecond()).to.equal(0.5);
    now += 1000;
    expect(rate.perSecond()).to.equal(2);
    // Ten seconds after the first second it has left the window.
    now += 9000;
    expect(rate.perSecond()).to.equal(1.5);
    now += 60_000;
    expect(rate.perSecond()).to.equal(0);
    // A slot reused for a new second starts from zero.
    rate.add(3);
    now += 1000;
    expect(rate.perSecond()).to.equal(0.3);
  });
});

describe('admin stats: GET /admin/stats', function () {
  this.timeout(60_000);
  let svc: TestService;
  let key: string;

  before(async () => {
    svc = await startService();
    key = (await new ApiKeysRepo(svc.deps.pools, svc.deps.router.shards[0]!.id).create('stats test')).key;
  });
  after(async () => {
    await svc?.stop();
  });

  it('when called without a valid key, then 401 invalid_api_key', async () => {
    for (const headers of [{}, { 'x-api-key': 'nope' }] as Record<string, string>[]) {
      const r = await new Client(svc.url).get('/admin/stats', { headers });
      expect(r.status).to.equal(401);
      expect(r.body.error).to.equal('invalid_api_key');
    }
  });

  it('when players write, then every shard is listed with its outbox backlog and lag, and the writes this replica applied count in its write rate', async () => {
    const c = new Client(svc.url);
    const tokens = await Promise.all(['EU', 'EU', 'NA'].map((region) => c.register(uniqueId('stats'), region)));
    for (const [i, token] of tokens.entries()) expect((await c.post('/score/update', { score: 10 + i }, { token })).status).to.equal(200);
    // The rate counts whole seconds: wait for the second of the last write to end.
    await new Promise((r) => setTimeout(r, 1100));
    const r = await c.get('/admin/stats', { headers: { 'x-api-key': key } });
    expect(r.status, JSON.stringify(r.body)).to.equal(200);
    expect(r.body.instance).to.equal(svc.config.instanceId);
    expect(Date.parse(r.body.at)).to.be.closeTo(Date.now(), 5000);
    expect(r.body.shards.map((s: { shard: string }) => s.shard)).to.deep.equal(svc.deps.router.shards.map((s) => s.id));
    for (const s of r.body.shards) {
      expect(s.lag_ms, s.shard).to.be.a('number').and.at.least(0);
      expect(s).not.to.have.property('error');
      // No worker runs here, so nothing leaves the outbox: the backlog is its HLEN.
      const store = svc.deps.stores.get(s.shard);
      expect(s.backlog, s.shard).to.equal(await store.client.hLen(store.keys.outbox));
    }
    const perShard = Object.fromEntries(r.body.shards.map((s: { shard: string; writes_per_s: number }) => [s.shard, s.writes_per_s]));
    // 3 score updates (2 on the EU shard), plus whatever registration wrote through the same scripts, over 10 s.
    expect(r.body.write_rate.window_s).to.equal(10);
    expect(r.body.write_rate.per_s).to.be.at.least(0.3);
    expect(perShard[svc.deps.router.homeShard('', 'EU').id]).to.be.at.least(0.2);
  });
});
