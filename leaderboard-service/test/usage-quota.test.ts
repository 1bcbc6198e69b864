/**
 * Metered usage and monthly quotas (issue 21): every operation counted by
 * kind and project, the usage answer exact across a day boundary of the
 * service's clock, and a tenant's quota holding writes exactly, then
 * refusing reads, while another tenant is served; the thresholds recorded
 * once each in the audit log.
 */
import { expect } from 'chai';
import { uniqueId } from '@lb/devtools/testing';
import { ApiKeysRepo } from '../src/db/api-keys-repo.js';
import { Client, startService, type Reply, type TestService } from './support/service.js';

const tid = (p: string) => uniqueId(p).toLowerCase().replace(/[^a-z0-9_-]/g, '');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('metered usage and monthly quotas', function () {
  this.timeout(90_000);
  let svc: TestService;
  let api: Client;
  let platform: string;
  // The service's clock: 2026-12-07 23:59:30 UTC until the test moves it.
  let now = Date.UTC(2026, 11, 7, 23, 59, 30);
  const call = (method: string, path: string, key: string, body?: unknown): Promise<Reply> => api.request(method, path, { ...(body !== undefined && { body }), headers: { 'x-api-key': key } });
  const ok = async (r: Promise<Reply>) => {
    const x = await r;
    expect(x.status, JSON.stringify(x.body)).to.be.oneOf([200, 201]);
    return x.body;
  };
  /** A tenant with `projects`, each with a server key and the players `players[p]` registered (registration's entry is a write). */
  const tenantWith = async (body: Record<string, unknown>, projects: string[], players: Record<string, string[]> = {}) => {
    const tenant = tid('use');
    await ok(call('POST', '/admin/tenants', platform, { id: tenant, name: tenant, ...body }));
    const keys: Record<string, string> = {};
    for (const p of projects) {
      await ok(call('POST', `/admin/projects?tenant=${tenant}`, platform, { id: p, name: p }));
      keys[p] = (await ok(call('POST', `/admin/keys?tenant=${tenant}`, platform, { kind: 'server', name: p, project: p }))).key as string;
      const client = (await ok(call('POST', `/admin/keys?tenant=${tenant}`, platform, { kind: 'client', name: `${p} client`, project: p }))).key as string;
      for (const [i, user] of (players[p] ?? []).entries()) {
        await ok(call('POST', '/auth/register', client, { user_id: user, name: user, region: ['EU', 'NA', 'ASIA'][i % 3], password: 'correct horse' }));
      }
    }
    const admin = (await ok(call('POST', `/admin/keys?tenant=${tenant}`, platform, { kind: 'admin', name: 'admin' }))).key as string;
    return { tenant, keys, admin };
  };

  before(async () => {
    svc = await startService({ USAGE_FLUSH_MS: '200' }, { clock: () => now });
    api = new Client(svc.url);
    platform = (await new ApiKeysRepo(svc.deps.pools, svc.deps.router.shards[0]!.id).create('usage tests')).key;
  });
  after(async () => svc?.stop());

  it('when a known sequence of operations crosses a day boundary of the clock, then /admin/usage answers exactly those counts by project and day (a replayed idempotent write is not counted twice)', async () => {
    // Registration's entries: alpha 3 writes, beta 2, on day one.
    const t = await tenantWith({ plan: 'pro' }, ['alpha', 'beta'], { alpha: ['ann', 'bob', 'cyd'], beta: ['dan', 'eve'] });
    const write = (p: string, user: string, score: number, extra: Record<string, string> = {}) =>
      api.request('POST', '/boards/main/scores', { body: { user_id: user, score }, headers: { 'x-api-key': t.keys[p]!, ...extra } });
    const read = (p: string) => call('GET', '/boards/main/top?limit=5', t.keys[p]!);
    // Day one: alpha 3 writes (one retried with its Idempotency-Key) and 4 reads, beta 2 writes and 1 read.
    for (const [i, user] of ['ann', 'bob', 'cyd'].entries()) expect((await write('alpha', user, 10 + i, { 'idempotency-key': `k-${user}` })).status).to.equal(200);
    expect((await write('alpha', 'ann', 10, { 'idempotency-key': 'k-ann' })).status, 'the retry').to.equal(200);
    for (let i = 0; i < 4; i++) expect((await read('alpha')).status).to.equal(200);
    expect((await write('beta', 'dan', 5)).status).to.equal(200);
    expect((await write('beta', 'eve', 6)).status).to.equal(200);
    expect((await read('beta')).status).to.equal(200);
    // Day two.
    now = Date.UTC(2026, 11, 8, 0, 0, 30);
    expect((await write('alpha', 'ann', 50)).status).to.equal(200);
    expect((await read('beta')).status).to.equal(200);
    await sleep(600); // two flushes
    const u = await call('GET', '/admin/usage?from=2026-12-07&to=2026-12-08', t.admin);
    expect(u.status, JSON.stringify(u.body)).to.equal(200);
    // (admin: the set-up's /admin requests of the platform key, counted too; not part of the sequence.)
    const rows = (u.body.rows as { project: string | null; admin?: number }[]).filter((r) => r.project !== null).map(({ admin: _admin, ...r }) => ({ ...r, admin: 0 }));
    expect(rows).to.deep.equal([
      { project: 'alpha', period_start: '2026-12-07T00:00:00.000Z', writes: 6, reads: 4, streams: 0, events: 0, admin: 0 },
      { project: 'beta', period_start: '2026-12-07T00:00:00.000Z', writes: 4, reads: 1, streams: 0, events: 0, admin: 0 },
      { project: 'alpha', period_start: '2026-12-08T00:00:00.000Z', writes: 1, reads: 0, streams: 0, events: 0, admin: 0 },
      { project: 'beta', period_start: '2026-12-08T00:00:00.000Z', writes: 0, reads: 1, streams: 0, events: 0, admin: 0 },
    ]);
    // By hour, one project.
    const h = await call('GET', '/admin/usage?from=2026-12-07&to=2026-12-08&granularity=hour&project=beta', t.admin);
    expect(h.body.rows.map((r: { period_start: string; writes: number; reads: number }) => [r.period_start, r.writes, r.reads])).to.deep.equal([
      ['2026-12-07T23:00:00.000Z', 4, 1],
      ['2026-12-08T00:00:00.000Z', 0, 1],
    ]);
    // The admin key's own requests are counted too (under no project).
    expect((u.body.rows as { project: string | null; admin: number }[]).some((r) => r.project === null && r.admin > 0)).to.equal(true);
    // Another tenant's admin sees none of it; bad input is a 400 naming the field.
    const other = await tenantWith({ plan: 'free' }, ['x']);
    expect((await call('GET', '/admin/usage?from=2026-12-07&to=2026-12-08', other.admin)).body.rows.filter((r: { project: string | null }) => r.project !== null)).to.deep.equal([]);
    const bad = await call('GET', '/admin/usage?from=2026-13-01', t.admin);
    expect(bad.status).to.equal(400);
    expect(bad.body).to.include({ error: 'invalid_query', field: 'from' });
    // The billing export: one row per project.
    const csv = await api.request('GET', '/admin/usage.csv?month=2026-12', { headers: { 'x-api-key': t.admin } });
    expect(csv.status).to.equal(200);
    expect(String(csv.body)).to.include(`${t.tenant},alpha,2026-12,7,4,0,0,`).and.to.include(`${t.tenant},beta,2026-12,4,2,0,0,`);
  });

  it('when an enterprise tenant reaches its own quota, then exactly the quota of writes is accepted across shards, the next write and every read get 429 quota_exceeded, another tenant is served, raising the quota lifts it, and 75/90/100% are recorded once each', async () => {
    const QUOTA = 40;
    const players = ['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6'];
    // Registration's entries are writes too: 7 of the quota.
    const t = await tenantWith({ plan: 'enterprise', monthly_ops: QUOTA }, ['live'], { live: players });
    const free = await tenantWith({ plan: 'free' }, ['live'], { live: players });
    const write = (g: { keys: Record<string, string> }, i: number) => call('POST', '/boards/main/scores', g.keys.live!, { user_id: `p${i % 7}`, score: i + 1 });
    // Players of several ids: their home shards differ (GLOBAL players hash across every shard).
    const results: Reply[] = [];
    const LEFT = QUOTA - players.length;
    for (let i = 0; i < LEFT + 5; i++) results.push(await write(t, i));
    const accepted = results.filter((r) => r.status === 200).length;
    expect(accepted, 'exactly the quota').to.equal(LEFT);
    for (const r of results.slice(LEFT)) {
      expect(r.status).to.equal(429);
      expect(r.body.error).to.equal('quota_exceeded');
      expect(r.body.retry_after).to.be.at.least(1);
    }
    expect(results[0]!.headers.get('x-quota-limit')).to.equal(String(QUOTA));
    await sleep(1100); // every replica's view of the month is at most a second old
    const read = await call('GET', '/boards/main/top', t.keys.live!);
    expect(read.status).to.equal(429);
    expect(read.body.error).to.equal('quota_exceeded');
    expect(read.headers.get('x-quota-remaining')).to.equal('0');
    // The tenant's own admin routes stay open; another tenant is served.
    expect((await call('GET', '/admin/quota', t.admin)).body).to.include({ limit: QUOTA, remaining: 0 });
    expect((await write(free, 1)).status).to.equal(200);
    expect((await call('GET', '/boards/main/top', free.keys.live!)).status).to.equal(200);
    // The thresholds, once each.
    const audit = await call('GET', '/admin/audit?limit=200', t.admin);
    const quotaEvents = (audit.body.entries as { action: string; target: string }[]).filter((e) => e.action.startsWith('quota.')).map((e) => `${e.action} ${e.target}`);
    expect(quotaEvents.sort()).to.deep.equal(['quota.exceeded quota 2026-12 100%', 'quota.warning quota 2026-12 75%', 'quota.warning quota 2026-12 90%']);
    // Raised: writes again within a second (the tenant cache's life).
    expect((await call('PATCH', `/admin/tenants/${t.tenant}`, platform, { monthly_ops: QUOTA + 10 })).status).to.equal(200);
    await sleep(svc.deps.credentials.cacheLifeMs + 100);
    expect((await write(t, 100)).status).to.equal(200);
    // A quota of its own is an enterprise tenant's only.
    const wrong = await call('PATCH', `/admin/tenants/${free.tenant}`, platform, { monthly_ops: 5 });
    expect(wrong.status).to.equal(400);
    expect(wrong.body).to.include({ error: 'invalid_payload', field: 'monthly_ops' });
  });
});
