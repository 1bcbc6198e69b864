/**
 * The service's /metrics after real traffic: scraped over HTTP from the
 * internal listener, parsed, and compared before and after, so each
 * assertion is an exact delta of what the test caused.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { expect } from 'chai';
import { createLogger, METRIC, startMetricsServer } from '@lb/common/platform';
import { labelValues, scrape, uniqueId, valueOf, type Sample } from '@lb/devtools/testing';
import { Client, startService, type TestService } from './support/service.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('leaderboard-service metrics', function () {
  this.timeout(30_000);
  let svc: TestService;
  let metricsServer: Server;
  let metricsUrl: string;
  let api: Client;

  before(async () => {
    // A shard refuses writes at 4 waiting events (no worker runs here), a player gets 2 writes a minute.
    svc = await startService({ QUEUE_REJECT_LENGTH: '4', USER_RATE_LIMIT_COUNT: '2', USER_RATE_LIMIT_WINDOW_MS: '60000', TOP_CACHE_MAX_AGE_MS: '60000' });
    metricsServer = await startMetricsServer(svc.deps.metrics.registry, '127.0.0.1', 0, createLogger('test', 'silent'));
    metricsUrl = `http://127.0.0.1:${(metricsServer.address() as AddressInfo).port}/metrics`;
    api = new Client(svc.url);
  });
  after(async () => {
    metricsServer?.close();
    await svc?.stop();
  });

  const delta = (before: Sample[], after: Sample[], name: string, labels: Record<string, string> = {}) => valueOf(after, name, labels) - valueOf(before, name, labels);

  it('when writes are accepted and refused, then lb_writes_total moves by region and outcome by exactly that many', async () => {
    const before = await scrape(metricsUrl);
    const a = uniqueId('ma');
    const tokenA = await api.register(a, 'NA'); // accepted (1 event waiting on na)
    for (let i = 0; i < 2; i++) expect((await api.post('/score/add', { delta: 1 }, { token: tokenA })).status).to.equal(200); // 3 waiting
    for (let i = 0; i < 3; i++) expect((await api.post('/score/add', { delta: 1 }, { token: tokenA })).body.error).to.equal('rate_limited');
    expect((await api.post('/score/add', { delta: -100 }, { token: tokenA })).body.error).to.equal('score_out_of_range');
    // Refused by the route's own check, before the write script: still a refused write.
    expect((await api.post('/score/update', { score: -5 }, { token: tokenA })).body.error).to.equal('score_out_of_range');
    const tokenB = await api.register(uniqueId('mb'), 'NA'); // accepted: 4 waiting, the shard is full
    for (let i = 0; i < 5; i++) expect((await api.post('/score/add', { delta: 1 }, { token: tokenB })).body.error).to.equal('queue_full');
    const after = await scrape(metricsUrl);

    const w = (outcome: string) => delta(before, after, METRIC.writes, { region: 'NA', outcome });
    expect({ accepted: w('accepted'), rate_limited: w('rate_limited'), score_out_of_range: w('score_out_of_range'), queue_full: w('queue_full') }).to.deep.equal({
      accepted: 4,
      rate_limited: 3,
      score_out_of_range: 2,
      queue_full: 5,
    });
    expect(delta(before, after, METRIC.writes, { region: 'EU' })).to.equal(0);
    // Every write was one call of the write script on na's Redis, refused or not.
    expect(delta(before, after, `${METRIC.redisDuration}_count`, { shard: 'na', op: 'write' })).to.equal(13);
    expect(delta(before, after, `${METRIC.redisErrors}`, { shard: 'na' })).to.equal(0);
    // Account rows went to Postgres.
    expect(delta(before, after, `${METRIC.pgDuration}_count`)).to.be.greaterThan(0);
  });

  it('when reads hit the top page, then the HTTP histogram counts them by route template and status, and the cache counts one miss, then hits, then an invalidation on a change', async () => {
    const player = uniqueId('mt');
    const token = await api.register(player, 'ASIA', { initialScore: 1_000_000 });
    await api.get('/top?region=ASIA&limit=10'); // loads the page after the registration's change
    const before = await scrape(metricsUrl);
    for (let i = 0; i < 7; i++) expect((await api.get('/top?region=ASIA&limit=10')).status).to.equal(200);
    expect((await api.get(`/rank/${player}?region=ASIA`)).status).to.equal(200);
    expect((await api.get(`/rank/${uniqueId('nobody')}?region=ASIA`)).status).to.equal(404);
    expect((await api.get('/no/such/path')).status).to.equal(404);
    const mid = await scrape(metricsUrl);
    const h = `${METRIC.httpDuration}_count`;
    expect(delta(before, mid, h, { route: '/top', method: 'GET', status: '200' })).to.equal(7);
    expect(delta(before, mid, h, { route: '/rank/:userId', method: 'GET', status: '200' })).to.equal(1);
    expect(delta(before, mid, h, { route: '/rank/:userId', method: 'GET', status: '404' })).to.equal(1);
    expect(delta(before, mid, h, { route: 'other', method: 'GET', status: '404' })).to.equal(1);
    // All seven were served from memory (the page was loaded before).
    expect(delta(before, mid, METRIC.topCacheHits)).to.equal(7);
    expect(delta(before, mid, METRIC.topCacheMisses)).to.equal(0);
    // Latency sums are positive seconds, and buckets are cumulative.
    expect(delta(before, mid, `${METRIC.httpDuration}_sum`, { route: '/top' })).to.be.greaterThan(0);
    expect(valueOf(mid, `${METRIC.httpDuration}_bucket`, { route: '/top', method: 'GET', status: '200', le: '+Inf' })).to.equal(valueOf(mid, h, { route: '/top', method: 'GET', status: '200' }));

    // A write that changes the top page drops it on every replica (this one learns by pub/sub).
    expect((await api.post('/score/add', { delta: 5 }, { token })).status).to.equal(200);
    let after = await scrape(metricsUrl);
    for (let i = 0; i < 100 && delta(mid, after, METRIC.topCacheInvalidations) === 0; i++) {
      await sleep(20);
      after = await scrape(metricsUrl);
    }
    expect(delta(mid, after, METRIC.topCacheInvalidations)).to.equal(1);
    expect((await api.get('/top?region=ASIA&limit=10')).status).to.equal(200);
    const last = await scrape(metricsUrl);
    expect(delta(after, last, METRIC.topCacheMisses)).to.equal(1);
  });

  it('then label values stay bounded: route templates, topology regions and shards, no user ids', async () => {
    const samples = await scrape(metricsUrl);
    const routes = labelValues(samples, `${METRIC.httpDuration}_count`, 'route');
    expect(routes).to.include.members(['/top', '/rank/:userId', '/auth/register', '/score/add', 'other']);
    for (const r of routes) expect(r === 'other' || r.startsWith('/')).to.equal(true);
    expect(labelValues(samples, METRIC.writes, 'region')).to.satisfy((rs: string[]) => rs.every((r) => ['NA', 'EU', 'ASIA', 'other'].includes(r)));
    const text = samples.map((s) => JSON.stringify(s.labels)).join('\n');
    expect(text).not.to.match(/ma-|mb-|mt-|nobody/);
    // Every series says which service it is from; the process defaults are there.
    expect(samples.every((s) => s.labels.service === 'leaderboard-service')).to.equal(true);
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_p99_seconds']) {
      expect(samples.some((s) => s.name === name), name).to.equal(true);
    }
  });

  it('then the listener serves /metrics only', async () => {
    const other = await fetch(metricsUrl.replace('/metrics', '/top'));
    expect(other.status).to.equal(404);
    expect(((await other.json()) as { error: string }).error).to.equal('not_found');
  });
});

describe('leaderboard-service with METRICS_PORT=0', function () {
  this.timeout(30_000);
  it('records nothing: the recorders are off and the registry is empty', async () => {
    const svc = await startService({ METRICS_PORT: '0' });
    try {
      const api = new Client(svc.url);
      await api.register(uniqueId('off'), 'EU');
      await api.get('/top?region=EU');
      expect(svc.deps.metrics.enabled).to.equal(false);
      expect((await svc.deps.metrics.registry.text()).trim()).to.equal('');
    } finally {
      await svc.stop();
    }
  });
});
