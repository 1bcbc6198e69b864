import { expect } from 'chai';
import { uniqueId } from '@lb/devtools/testing';
import { ApiKeysRepo } from '../src/db/api-keys-repo.js';
import { DEFAULT_PROJECT } from '@lb/common/contracts';
import { Client, startService, type TestService } from './support/service.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * A player written straight into a board's sorted set, the way no code path
 * of the service writes (no change is published): only a page read from the
 * shards can show it, so it tells cached pages from fresh ones.
 */
async function plantGhost(svc: TestService, shard: string, board: string): Promise<string> {
  const store = svc.deps.stores.get(shard);
  const ghost = uniqueId('ghost');
  await store.client.zAdd(store.keys.project(DEFAULT_PROJECT).boardPeriod('main', 'all').view(board), { score: -999_999_999, value: ghost });
  await store.client.hSet(store.keys.project(DEFAULT_PROJECT).names, ghost, 'Ghost');
  return ghost;
}

async function removeGhost(svc: TestService, shard: string, board: string, ghost: string): Promise<void> {
  const store = svc.deps.stores.get(shard);
  await store.client.zRem(store.keys.project(DEFAULT_PROJECT).boardPeriod('main', 'all').view(board), ghost);
  await store.client.hDel(store.keys.project(DEFAULT_PROJECT).names, ghost);
}

const firstIds = (body: { rows: { user_id: string }[] }) => body.rows.map((r) => r.user_id);

describe('top-page cache', function () {
  this.timeout(60_000);

  describe('two replicas sharing the boards', () => {
    let a: TestService;
    let b: TestService;
    before(async () => {
      const prefix = `t${uniqueId('').replace(/[^a-z0-9]/gi, '').toLowerCase().slice(-10)}`;
      // A long max age: only the published changes can refresh B's pages.
      a = await startService({ KEY_PREFIX: prefix, TOP_CACHE_MAX_AGE_MS: '600000' });
      b = await startService({ KEY_PREFIX: prefix, TOP_CACHE_MAX_AGE_MS: '600000' });
      await until('subscriptions', () => a.deps.topCache.live() && b.deps.topCache.live());
      expect((await new Client(b.url).get('/health')).body.top_cache).to.equal('live');
    });
    after(async () => {
      await a?.stop();
      await b?.stop();
    });

    it('when pages are cached, then they are served from memory: a change made behind the service\'s back shows only on an uncached page', async () => {
      const api = new Client(a.url);
      const tokens = await Promise.all(Array.from({ length: 5 }, (_, i) => api.register(uniqueId(`c${i}`), 'EU', { initialScore: 100 + i })));
      expect(tokens).to.have.length(5);
      const readB = new Client(b.url);
      const warm = await readB.get('/top?region=EU&limit=10');
      expect(warm.status).to.equal(200);
      const ghost = await plantGhost(b, 'eu', 'EU');
      try {
        expect(firstIds((await readB.get('/top?region=EU&limit=10')).body)).to.deep.equal(firstIds(warm.body));
        // Deeper than the cache (100 rows): read from the shards.
        expect(firstIds((await readB.get('/top?region=EU&limit=101')).body)[0]).to.equal(ghost);
      } finally {
        await removeGhost(b, 'eu', 'EU', ghost);
      }
    });

    it('when a named board\'s first page is cached on one replica, then writes through the other replica show on it at once, and a planted change does not', async () => {
      const key = (await new ApiKeysRepo(a.deps.pools, a.deps.router.shards[0]!.id).create('cache')).key;
      const board = uniqueId('cached').toLowerCase();
      expect((await new Client(a.url).request('POST', '/admin/boards', { body: { id: board, operator: 'set' }, headers: { 'x-api-key': key } })).status).to.equal(201);
      await until('board seen by B', async () => (await new Client(b.url).get(`/boards/${board}`)).status === 200);
      const writers = await Promise.all(Array.from({ length: 6 }, async (_, i) => ({ id: uniqueId(`nb${i}`), token: await new Client(a.url).register(uniqueId(`nbr${i}`), ['NA', 'EU', 'ASIA'][i % 3]!) })));
      const readB = new Client(b.url);
      for (const [i, w] of writers.entries()) {
        await new Client(a.url).post(`/boards/${board}/scores`, { score: 10 * (i + 1) }, { token: w.token });
        // Two cached depths (a top 10 loads 10 rows per shard, a top 50 loads 100): a write drops both.
        const viaB = await readB.get(`/boards/${board}/top?region=GLOBAL&limit=10`);
        const deepViaB = await readB.get(`/boards/${board}/top?region=GLOBAL&limit=50`);
        const uncached = await readB.get(`/boards/${board}/top?region=GLOBAL&limit=101`);
        expect(viaB.body.rows, `after write ${i}`).to.deep.equal(uncached.body.rows);
        expect(deepViaB.body.rows, `after write ${i}`).to.deep.equal(uncached.body.rows);
        expect(viaB.body.total).to.equal(i + 1);
      }
      // A change no write announced is not seen by the cached pages: they were served from memory.
      const store = b.deps.stores.get('eu');
      const ghost = uniqueId('ghost');
      await store.client.zAdd(store.keys.project(DEFAULT_PROJECT).boardPeriod(board, 'all').view('GLOBAL'), { score: -999_999, value: ghost });
      expect((await readB.get(`/boards/${board}/top?region=GLOBAL&limit=10`)).body.rows[0].user_id).not.to.equal(ghost);
      expect((await readB.get(`/boards/${board}/top?region=GLOBAL&limit=50`)).body.rows[0].user_id).not.to.equal(ghost);
      expect((await readB.get(`/boards/${board}/top?region=GLOBAL&limit=101`)).body.rows[0].user_id).to.equal(ghost);
    });

    it('when a write on one replica changes a board\'s first rows or its size, then the other replica\'s next page has it', async () => {
      const api = new Client(a.url);
      const readB = new Client(b.url);
      const players: { id: string; token: string; region: string }[] = [];
      for (let i = 0; i < 8; i++) {
        const id = uniqueId(`w${i}`);
        const region = i % 2 === 0 ? 'EU' : 'NA';
        players.push({ id, region, token: await api.register(id, region, { initialScore: 1000 + i }) });
      }
      for (const board of ['EU', 'NA', 'GLOBAL']) await readB.get(`/top?region=${board}&limit=10`);
      for (let round = 0; round < 30; round++) {
        const p = players[round % players.length]!;
        const w = await api.post('/score/add', { delta: 1 + ((round * 7919) % 5000) }, { token: p.token });
        expect(w.status).to.equal(200);
        for (const board of [p.region, 'GLOBAL']) {
          const cached = (await readB.get(`/top?region=${board}&limit=10`)).body;
          const fresh = (await readB.get(`/top?region=${board}&limit=101`)).body;
          expect(cached.rows, `${board} after round ${round}`).to.deep.equal(fresh.rows.slice(0, 10));
          expect(cached.total).to.equal(fresh.total);
          expect(cached.rows.find((r: { user_id: string }) => r.user_id === p.id)?.score).to.equal(w.body.score);
        }
      }
      // A new player changes the size of the boards every top page reports.
      const before = (await readB.get('/top?region=GLOBAL&limit=10')).body.total;
      await api.register(uniqueId('newcomer'), 'ASIA', { initialScore: 1 });
      expect((await readB.get('/top?region=GLOBAL&limit=10')).body.total).to.equal(before + 1);
    });

    it('when a shard drops the subscription, then the replica forgets its pages and reads fresh ones', async () => {
      const readB = new Client(b.url);
      const warm = await readB.get('/top?region=EU&limit=10');
      const ghost = await plantGhost(b, 'eu', 'EU');
      try {
        expect(firstIds((await readB.get('/top?region=EU&limit=10')).body)).to.deep.equal(firstIds(warm.body));
        const store = b.deps.stores.get('eu');
        await store.client.sendCommand(['CLIENT', 'KILL', 'TYPE', 'pubsub']);
        await until('the subscription to come back', () => b.deps.topCache.live() && a.deps.topCache.live());
        expect(firstIds((await readB.get('/top?region=EU&limit=10')).body)[0]).to.equal(ghost);
      } finally {
        await removeGhost(b, 'eu', 'EU', ghost);
      }
    });
  });

  describe('settings', () => {
    it('when TOP_CACHE_MAX_AGE_MS passes, then a page is read again even without a published change', async () => {
      const svc = await startService({ TOP_CACHE_MAX_AGE_MS: '300' });
      try {
        await until('subscriptions', () => svc.deps.topCache.live());
        const api = new Client(svc.url);
        await api.register(uniqueId('age'), 'NA', { initialScore: 5 });
        const warm = await api.get('/top?region=NA&limit=10');
        const ghost = await plantGhost(svc, 'na', 'NA');
        expect(firstIds((await api.get('/top?region=NA&limit=10')).body)).to.deep.equal(firstIds(warm.body));
        await sleep(400);
        expect(firstIds((await api.get('/top?region=NA&limit=10')).body)[0]).to.equal(ghost);
      } finally {
        await svc.stop();
      }
    });

    it('when many boards and periods are read once, then their pages are swept away after TOP_CACHE_MAX_AGE_MS (the cache does not grow with every period)', async () => {
      const svc = await startService({ TOP_CACHE_MAX_AGE_MS: '2000' });
      try {
        await until('subscriptions', () => svc.deps.topCache.live());
        const api = new Client(svc.url);
        const key = (await new ApiKeysRepo(svc.deps.pools, svc.deps.router.shards[0]!.id).create('sweep')).key;
        const board = uniqueId('swept').toLowerCase();
        expect((await api.request('POST', '/admin/boards', { body: { id: board, reset: 'daily' }, headers: { 'x-api-key': key } })).status).to.equal(201);
        const pages = await Promise.all(Array.from({ length: 20 }, (_, d) => api.get(`/boards/${board}/top?region=GLOBAL&limit=10&period=2026-01-${String(d + 1).padStart(2, '0')}`)));
        expect(pages.map((r) => r.status)).to.deep.equal(pages.map(() => 200));
        expect(svc.deps.topCache.size()).to.be.at.least(20);
        await sleep(2500);
        await api.get(`/boards/${board}/top?region=GLOBAL&limit=10`);
        expect(svc.deps.topCache.size()).to.be.at.most(2);
      } finally {
        await svc.stop();
      }
    });

    it('when TOP_CACHE_MAX_AGE_MS is 0, then every page is read from the shards', async () => {
      const svc = await startService({ TOP_CACHE_MAX_AGE_MS: '0' });
      try {
        expect(svc.deps.topCache.live()).to.equal(false);
        expect((await new Client(svc.url).get('/health')).body.top_cache).to.equal('off');
        const api = new Client(svc.url);
        await api.register(uniqueId('off'), 'NA', { initialScore: 5 });
        await api.get('/top?region=NA&limit=10');
        const ghost = await plantGhost(svc, 'na', 'NA');
        expect(firstIds((await api.get('/top?region=NA&limit=10')).body)[0]).to.equal(ghost);
      } finally {
        await svc.stop();
      }
    });
  });
});
