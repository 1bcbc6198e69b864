import { expect } from 'chai';
import { readScoreJob, type ScoreEvent } from '@lb/common/contracts';
import { uniqueId } from '@lb/devtools/testing';
import { Client, startService, type Reply, type TestService } from './support/service.js';
import { mainEntry } from '../../test/support/main-entry.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Events of a shard not yet persisted (no worker runs in these tests): every
 * event stays in the outbox until a worker has it in Postgres.
 */
async function pendingEvents(svc: TestService, shard: string): Promise<number> {
  const store = svc.deps.stores.get(shard);
  return store.client.hLen(store.keys.outbox);
}

/** Waits until the relay has put every event of the shard on the queue. */
async function relayed(svc: TestService, shard: string): Promise<void> {
  const store = svc.deps.stores.get(shard);
  for (let i = 0; i < 200 && (await store.client.zCard(store.keys.outboxIndex)) > 0; i++) await sleep(10);
  expect(await store.client.zCard(store.keys.outboxIndex)).to.equal(0);
}

async function versionOf(svc: TestService, shard: string, user: string): Promise<string | null> {
  const store = svc.deps.stores.get(shard);
  const v = (await mainEntry(store.client, store.keys, user)).version;
  return v === null ? null : String(v);
}

describe('write limits and backpressure', function () {
  this.timeout(30_000);

  describe('per-player token bucket', () => {
    let svc: TestService;
    before(async () => {
      svc = await startService({ USER_RATE_LIMIT_COUNT: '5', USER_RATE_LIMIT_WINDOW_MS: '1000' });
    });
    after(async () => svc?.stop());

    it('when a player writes faster than the bucket allows, then 429 rate_limited with Retry-After, nothing changes, and writes recover after the window', async () => {
      const api = new Client(svc.url);
      const user = uniqueId('rl');
      const token = await api.register(user, 'EU');
      const results = [];
      for (let i = 0; i < 5; i++) results.push(await api.post('/score/add', { delta: 1 }, { token }));
      expect(results.map((r) => r.status)).to.deep.equal([200, 200, 200, 200, 200]);
      const pendingBefore = await pendingEvents(svc, 'eu');
      const refused = await api.post('/score/add', { delta: 1 }, { token });
      expect(refused.status).to.equal(429);
      expect(refused.body.error).to.equal('rate_limited');
      expect(refused.body.retry_after).to.be.a('number').greaterThan(0);
      expect(refused.headers.get('retry-after')).to.equal(String(refused.body.retry_after));
      // Registration wrote version 1 (it takes no token); five adds followed.
      expect(await versionOf(svc, 'eu', user)).to.equal('6');
      expect((await api.get(`/rank/${user}?region=EU`)).body.score).to.equal(5);
      expect(await pendingEvents(svc, 'eu')).to.equal(pendingBefore);

      // Another player is not affected by this player's bucket.
      const other = await api.register(uniqueId('rl2'), 'EU');
      expect((await api.post('/score/add', { delta: 1 }, { token: other })).status).to.equal(200);

      await sleep(1100);
      const again = await api.post('/score/add', { delta: 1 }, { token });
      expect(again.status).to.equal(200);
      expect(again.body.version).to.equal(7);
    });
  });

  describe('per-region token bucket', () => {
    let svc: TestService;
    before(async () => {
      svc = await startService({ REGION_RATE_LIMIT_COUNT: '4', REGION_RATE_LIMIT_WINDOW_MS: '1000' });
    });
    after(async () => svc?.stop());

    it('when a region takes more writes than its bucket, then 429 region_rate_limited, other regions still write, and it recovers', async () => {
      const api = new Client(svc.url);
      // Register first: registration places each player on the board but takes no token from any bucket.
      const players = await Promise.all(Array.from({ length: 5 }, async () => {
        const id = uniqueId('reg');
        return { id, token: await api.register(id, 'ASIA') };
      }));
      const asiaOther = { id: uniqueId('na'), token: await api.register(uniqueId('nax'), 'NA') };
      const statuses = [];
      for (const p of players) statuses.push((await api.post('/score/add', { delta: 1 }, { token: p.token })).status);
      expect(statuses.slice(0, 4)).to.deep.equal([200, 200, 200, 200]);
      expect(statuses[4]).to.equal(429);
      const refused = await api.post('/score/add', { delta: 1 }, { token: players[4]!.token });
      expect(refused.body.error).to.equal('region_rate_limited');
      expect(refused.headers.get('retry-after')).to.be.a('string');
      expect(await versionOf(svc, 'asia', players[4]!.id)).to.equal('1');
      expect((await api.post('/score/add', { delta: 1 }, { token: asiaOther.token })).status).to.equal(200);
      await sleep(1100);
      expect((await api.post('/score/add', { delta: 1 }, { token: players[4]!.token })).status).to.equal(200);
    });
  });

  describe('queue backpressure', () => {
    let svc: TestService;
    before(async () => {
      // No worker runs here, so every accepted event stays in the backlog.
      svc = await startService({ QUEUE_REJECT_LENGTH: '12' });
    });
    after(async () => svc?.stop());

    it('when the home shard backlog reaches QUEUE_REJECT_LENGTH events, then 429 queue_full with queue_length and nothing changes; other shards still write', async () => {
      const api = new Client(svc.url);
      const user = uniqueId('qf');
      const token = await api.register(user, 'NA');
      // The backlog is counted in events, however the relay packs them into
      // jobs: concurrent writes share envelopes and still count one by one.
      const burst = await Promise.all(Array.from({ length: 8 }, () => api.post('/score/add', { delta: 1 }, { token })));
      expect(burst.map((r) => r.status)).to.deep.equal(Array(8).fill(200));
      await relayed(svc, 'na');
      const statuses: number[] = burst.map((r) => r.status);
      let full: Reply | undefined;
      for (let i = 0; i < 20 && !full; i++) {
        const r = await api.post('/score/add', { delta: 1 }, { token });
        if (r.status === 200) statuses.push(r.status);
        else full = r;
      }
      // The registration's event is one of the 12.
      expect(statuses.length).to.equal(11);
      expect(full!.status).to.equal(429);
      expect(full!.body.error).to.equal('queue_full');
      expect(full!.body.queue_length).to.equal(12);
      expect(await versionOf(svc, 'na', user)).to.equal('12');
      expect(await pendingEvents(svc, 'na')).to.equal(12);
      const jobs = await svc.deps.relays.get('na').queue.getJobs(['wait']);
      expect(jobs.length, 'the events share jobs').to.be.lessThan(12);
      const eu = await api.register(uniqueId('qf-eu'), 'EU');
      expect((await api.post('/score/add', { delta: 1 }, { token: eu })).status).to.equal(200);
    });

    it('when a write is accepted, then its event is on the home shard queue with the absolute score and version', async () => {
      const api = new Client(svc.url);
      const user = uniqueId('ev');
      const token = await api.register(user, 'EU', { initialScore: 3 });
      await api.post('/score/add', { delta: 4 }, { token });
      const store = svc.deps.stores.get('eu');
      let events: ScoreEvent[] = [];
      for (let i = 0; i < 100 && events.length < 2; i++) {
        const jobs = await svc.deps.relays.get('eu').queue.getJobs(['wait']);
        events = jobs.flatMap((j) => readScoreJob(j.data).events).filter((e) => e.user_id === user);
        if (events.length < 2) await sleep(20);
      }
      events.sort((a, b) => a.version - b.version);
      expect(events[0]).to.deep.include({ user_id: user, name: `Name ${user}`, region: 'EU', op: 'register', delta: 3, score: 3, version: 1 });
      expect(events[1]).to.deep.include({ op: 'add', delta: 4, score: 7, version: 2 });
      expect(events[1]!.request_id).to.be.a('string');
      // On the queue, off the index; in the outbox until a worker persists it.
      expect(await store.client.zScore(store.keys.outboxIndex, `default/default/main/all/${user}#2`)).to.equal(null);
      expect(await store.client.hExists(store.keys.outbox, `default/default/main/all/${user}#2`)).to.equal(1);
    });
  });
});
