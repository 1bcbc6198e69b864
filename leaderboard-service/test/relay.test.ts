import { expect } from 'chai';
import { Queue } from 'bullmq';
import { DEFAULT_PROJECT, NO_PROJECT_LIMITS, queuePrefix, readScoreJob, SCORE_QUEUE, shardKeys } from '@lb/common/contracts';
import { connectionFor } from '@lb/common/platform';
import { uniqueId } from '@lb/devtools/testing';
import { startService, type TestService } from './support/service.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `n` writes of fresh players of one region, submitted together; their user ids. */
async function writeMany(svc: TestService, n: number, region: string): Promise<string[]> {
  const ids = Array.from({ length: n }, () => uniqueId('env'));
  await Promise.all(
    ids.map((id) => svc.deps.writer.submit({ project: DEFAULT_PROJECT, limits: NO_PROJECT_LIMITS, board: svc.deps.catalog.main(DEFAULT_PROJECT), player: { userId: id, name: id, region }, byPlayer: false, op: 'set', value: 5, requestId: 'r' })),
  );
  return ids;
}

/** The waiting jobs of a shard's queue that carry any of `ids`' events, as lists of user ids. */
async function envelopesOf(queue: Queue, ids: readonly string[]): Promise<string[][]> {
  const jobs = await queue.getJobs(['wait']);
  return jobs.map((j) => readScoreJob(j.data).events.map((e) => e.user_id).filter((u) => ids.includes(u))).filter((us) => us.length > 0);
}

/** A shard's queue and Redis, read from outside any service (they outlive the services of a test). */
function shardOf(svc: TestService, shardId: string) {
  const shard = svc.topology.shards.find((s) => s.id === shardId)!;
  const queue = new Queue(SCORE_QUEUE, { connection: connectionFor(shard.redis, false), prefix: queuePrefix(shard.id, svc.config.keyPrefix) });
  const keys = shardKeys(shard.id, svc.config.keyPrefix);
  return { queue, keys, redis: () => queue.getBackend().client };
}

describe('outbox relay', () => {
  it('when many writes of one shard arrive together, then their events share envelopes, each event once, and the outbox index empties while the outbox keeps them for the worker', async () => {
    const svc = await startService();
    try {
      const ids = await writeMany(svc, 60, 'EU');
      const store = svc.deps.stores.get('eu');
      for (let i = 0; i < 100 && (await store.client.zCard(store.keys.outboxIndex)) > 0; i++) await sleep(20);
      expect(await store.client.zCard(store.keys.outboxIndex)).to.equal(0);
      // No worker runs here: the outbox still counts every event as backlog.
      const kept = await store.client.hmGet(store.keys.outbox, ids.map((id) => `default/default/main/all/${id}#1`));
      expect(kept.every((v) => typeof v === 'string')).to.equal(true);
      const envelopes = await envelopesOf(svc.deps.relays.get('eu').queue, ids);
      expect(envelopes.flat().sort()).to.deep.equal([...ids].sort());
      expect(envelopes.length).to.be.lessThan(ids.length);
      expect(envelopes.some((e) => e.length > 1)).to.equal(true);
    } finally {
      await svc.stop();
    }
  });

  it('when events are written between two turns of the relay, then they wait in the outbox index, and the next turn (here: closing) sends them as envelopes of at most RELAY_ENVELOPE_MAX', async () => {
    // A turn at start, the next in a minute: the writes fall between them.
    const svc = await startService({ RELAY_LINGER_MS: '60000', RELAY_LEASE_MS: '120000', RELAY_ENVELOPE_MAX: '10' });
    const asia = shardOf(svc, 'asia');
    const na = shardOf(svc, 'na');
    let stopped = false;
    try {
      const many = await writeMany(svc, 25, 'ASIA');
      const few = await writeMany(svc, 7, 'NA');
      const redis = await asia.redis();
      expect(await redis.zcard(asia.keys.outboxIndex)).to.equal(25);
      expect(await envelopesOf(asia.queue, many)).to.deep.equal([]);
      await svc.stop();
      stopped = true;
      const envelopes = await envelopesOf(asia.queue, many);
      expect(envelopes.map((e) => e.length).sort((a, b) => a - b)).to.deep.equal([5, 10, 10]);
      expect(envelopes.flat().sort()).to.deep.equal([...many].sort());
      expect(await redis.zcard(asia.keys.outboxIndex)).to.equal(0);
      expect((await envelopesOf(na.queue, few)).map((e) => e.length)).to.deep.equal([7]);
      // Closing gave the lease up: the next replica starts at once.
      expect(await redis.get(asia.keys.relayLease)).to.equal(null);
    } finally {
      if (!stopped) await svc.stop();
      await Promise.all([asia.queue.close(), na.queue.close()]);
    }
  });

  it('when two replicas write to a shard, then only the one holding its lease enqueues, and when it stops the other takes the shard over', async () => {
    const env = { RELAY_LINGER_MS: '50', RELAY_LEASE_MS: '1000' };
    const a = await startService(env);
    const eu = shardOf(a, 'eu');
    let b: TestService | undefined;
    let aStopped = false;
    try {
      const redis = await eu.redis();
      for (let i = 0; i < 100 && (await redis.get(eu.keys.relayLease)) === null; i++) await sleep(20);
      expect(await redis.get(eu.keys.relayLease)).to.equal(a.deps.relays.get('eu').id);
      b = await startService({ ...env, KEY_PREFIX: a.config.keyPrefix });
      const viaB = await writeMany(b, 30, 'EU');
      for (let i = 0; i < 100 && (await redis.zcard(eu.keys.outboxIndex)) > 0; i++) await sleep(20);
      expect((await envelopesOf(eu.queue, viaB)).flat().sort()).to.deep.equal([...viaB].sort());
      expect(await redis.get(eu.keys.relayLease)).to.equal(a.deps.relays.get('eu').id);

      await a.stop();
      aStopped = true;
      const after = await writeMany(b, 10, 'EU');
      for (let i = 0; i < 200 && (await redis.zcard(eu.keys.outboxIndex)) > 0; i++) await sleep(20);
      expect((await envelopesOf(eu.queue, after)).flat().sort()).to.deep.equal([...after].sort());
      expect(await redis.get(eu.keys.relayLease)).to.equal(b.deps.relays.get('eu').id);
    } finally {
      if (!aStopped) await a.stop();
      await b?.stop();
      await eu.queue.close();
    }
  });
});
