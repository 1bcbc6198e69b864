import { expect } from 'chai';
import { readScoreJob } from '@lb/common/contracts';
import { uniqueId } from '@lb/devtools/testing';
import { startService, type TestService } from './support/service.js';

describe('outbox relay', () => {
  let svc: TestService;
  before(async () => {
    svc = await startService({ OUTBOX_SWEEP_INTERVAL_MS: '0' });
  });
  after(async () => svc?.stop());

  it('when many writes of one shard arrive together, then their events share envelopes, each event once, and the outbox index empties while the outbox keeps them for the worker', async () => {
    const ids = Array.from({ length: 60 }, () => uniqueId('env'));
    await Promise.all(
      ids.map((id) =>
        svc.deps.writer.submit({ board: svc.deps.catalog.main(), player: { userId: id, name: id, region: 'EU' }, byPlayer: false, op: 'set', value: 5, requestId: 'r' }),
      ),
    );
    const store = svc.deps.stores.get('eu');
    for (let i = 0; i < 100 && (await store.client.zCard(store.keys.outboxIndex)) > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await store.client.zCard(store.keys.outboxIndex)).to.equal(0);
    // No worker runs here: the outbox still counts every event as backlog.
    const kept = await store.client.hmGet(store.keys.outbox, ids.map((id) => `main/all/${id}#1`));
    expect(kept.every((v) => typeof v === 'string')).to.equal(true);
    const jobs = await svc.deps.relays.get('eu').queue.getJobs(['wait']);
    const events = jobs.flatMap((j) => readScoreJob(j.data).events).filter((e) => ids.includes(e.user_id));
    expect(events.map((e) => e.user_id).sort()).to.deep.equal([...ids].sort());
    const mine = jobs.filter((j) => readScoreJob(j.data).events.some((e) => ids.includes(e.user_id)));
    expect(mine.length).to.be.lessThan(ids.length);
    expect(mine.some((j) => Array.isArray((j.data as { events?: unknown }).events))).to.equal(true);
  });
});
