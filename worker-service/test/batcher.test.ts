import { expect } from 'chai';
import type { ScoreEvent } from '@lb/common/contracts';
import { Batcher, persistBatch, type BatchRepository } from '../src/batcher.js';
import { InvalidBatchError, type ApplyResult } from '../src/db/index.js';
import { scoreEvent } from './support/worker.js';

const tick = () => new Promise((r) => setImmediate(r));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A flush function that records batches and lets the test decide when each commits. */
function controlledFlush() {
  const batches: number[][] = [];
  const gates: { release: (outcome?: (string | undefined)[]) => void; fail: (e: Error) => void }[] = [];
  const flush = (items: readonly number[]) => {
    batches.push([...items]);
    return new Promise<(string | undefined)[]>((resolve, reject) => {
      gates.push({ release: (outcome) => resolve(outcome ?? items.map(() => undefined)), fail: reject });
    });
  };
  return { batches, gates, flush };
}

/** Tracks how each add() settled. */
function track(p: Promise<readonly (string | undefined)[]>) {
  const s: { state: 'pending' | 'resolved' | 'rejected'; outcome?: readonly (string | undefined)[]; error?: Error } = { state: 'pending' };
  p.then(
    (outcome) => {
      s.state = 'resolved';
      s.outcome = outcome;
    },
    (e: Error) => {
      s.state = 'rejected';
      s.error = e;
    },
  );
  return s;
}

describe('Batcher', () => {
  it('when groups of maxSize items in all arrive, then they are written as one batch at once, and each group resolves once, after the write', async () => {
    const f = controlledFlush();
    const b = new Batcher<number>({ maxSize: 3, maxWaitMs: 60_000 }, f.flush);
    const s = [[1, 2], [3], [4]].map((g) => track(b.add(g)));
    await tick();
    expect(f.batches).to.deep.equal([[1, 2, 3]]);
    expect(s.map((x) => x.state)).to.deep.equal(['pending', 'pending', 'pending']);
    f.gates[0]!.release();
    await tick();
    expect(s.map((x) => x.state)).to.deep.equal(['resolved', 'resolved', 'pending']);
    expect(s.map((x) => x.outcome)).to.deep.equal([[undefined, undefined], [undefined], undefined]);
    expect(b.buffered).to.equal(1);
  });

  it('when a group holds more than maxSize items, then it is written whole, in a batch of its own', async () => {
    const f = controlledFlush();
    const b = new Batcher<number>({ maxSize: 3, maxWaitMs: 60_000 }, f.flush);
    const s = [[1], [2, 3, 4, 5]].map((g) => track(b.add(g)));
    await tick();
    expect(f.batches).to.deep.equal([[1], [2, 3, 4, 5]]);
    f.gates.forEach((g) => g.release());
    await tick();
    expect(s.map((x) => x.outcome)).to.deep.equal([[undefined], [undefined, undefined, undefined, undefined]]);
  });

  it('when an empty group is added, then it resolves at once and nothing is written', async () => {
    const f = controlledFlush();
    const b = new Batcher<number>({ maxSize: 3, maxWaitMs: 0 }, f.flush);
    expect(await b.add([])).to.deep.equal([]);
    await tick();
    expect(f.batches).to.deep.equal([]);
  });

  it('when more full batches arrive than may be written at once, then at most maxInFlight run and the rest follow as each commits', async () => {
    const f = controlledFlush();
    const b = new Batcher<number>({ maxSize: 2, maxWaitMs: 60_000, maxInFlight: 2 }, f.flush);
    const s = [1, 2, 3, 4, 5, 6, 7].map((n) => track(b.add([n])));
    await tick();
    expect(f.batches).to.deep.equal([[1, 2], [3, 4]]);
    expect(b.buffered).to.equal(3);
    f.gates[0]!.release();
    await tick();
    expect(f.batches).to.deep.equal([[1, 2], [3, 4], [5, 6]]);
    expect(b.buffered).to.equal(1);
    expect(s.map((x) => x.state).slice(0, 2)).to.deep.equal(['resolved', 'resolved']);
  });

  it('when fewer than maxSize items arrive, then they are written after maxWaitMs', async () => {
    const f = controlledFlush();
    const b = new Batcher<number>({ maxSize: 100, maxWaitMs: 40 }, f.flush);
    const started = Date.now();
    void b.add([1]);
    void b.add([2]);
    await sleep(10);
    expect(f.batches).to.have.length(0);
    await sleep(60);
    expect(f.batches).to.deep.equal([[1, 2]]);
    expect(Date.now() - started).to.be.at.least(35);
    f.gates[0]!.release();
  });

  it('when the write fails, then every group of the batch rejects with that error', async () => {
    const f = controlledFlush();
    const b = new Batcher<number>({ maxSize: 3, maxWaitMs: 1000 }, f.flush);
    const s = [[1, 2], [3]].map((g) => track(b.add(g)));
    await tick();
    f.gates[0]!.fail(new Error('connection refused'));
    await tick();
    expect(s.map((x) => x.error?.message)).to.deep.equal(['connection refused', 'connection refused']);
    expect(b.stats.failedBatches).to.equal(1);
    expect(b.stats.lastError).to.equal('connection refused');
  });

  it('when the write refuses one item, then its group resolves with the reason at that item and the other groups are unaffected', async () => {
    const f = controlledFlush();
    const b = new Batcher<number>({ maxSize: 3, maxWaitMs: 1000 }, f.flush);
    const s = [[1, 2], [3]].map((g) => track(b.add(g)));
    await tick();
    f.gates[0]!.release([undefined, 'bad name', undefined]);
    await tick();
    expect(s.map((x) => x.outcome)).to.deep.equal([[undefined, 'bad name'], [undefined]]);
    expect(b.stats.refusedItems).to.equal(1);
  });

  it('when every slot of the caller (groups) is buffered or being written, then a partial batch is written at once', async () => {
    const f = controlledFlush();
    const b = new Batcher<number>({ maxSize: 4, maxWaitMs: 60_000, capacity: 3 }, f.flush);
    void b.add([1, 2]);
    void b.add([3, 4]);
    await tick();
    expect(f.batches).to.deep.equal([[1, 2, 3, 4]]);
    void b.add([5]); // 2 groups in flight + 1 buffered = capacity: nothing more can arrive
    await tick();
    expect(f.batches).to.deep.equal([[1, 2, 3, 4], [5]]);
    f.gates.forEach((g) => g.release());
  });

  it('when hurried, then buffered and later groups are written on the next tick, and drain waits for every write', async () => {
    const f = controlledFlush();
    const b = new Batcher<number>({ maxSize: 100, maxWaitMs: 60_000 }, f.flush);
    const first = track(b.add([1]));
    b.hurry();
    const second = track(b.add([2]));
    await tick();
    expect(f.batches).to.deep.equal([[1], [2]]);
    let drained = false;
    const d = b.drain().then(() => (drained = true));
    await tick();
    expect(drained).to.equal(false);
    f.gates.forEach((g) => g.release());
    await d;
    expect([first.state, second.state]).to.deep.equal(['resolved', 'resolved']);
  });
});

describe('persistBatch', () => {
  const ok = (events: readonly ScoreEvent[]): ApplyResult => ({ events: events.length, inserted: events.length, players: events.length, upserted: events.length });

  it('when the repository fails for a transient reason, then the whole batch rejects (to be retried)', async () => {
    const repo: BatchRepository = { applyBatch: () => Promise.reject(new Error('ECONNREFUSED')) };
    let caught: unknown;
    await persistBatch('na', [scoreEvent(), scoreEvent()], repo).catch((e: unknown) => (caught = e));
    expect((caught as Error).message).to.equal('ECONNREFUSED');
  });

  it('when the repository refuses the data, then the batch is bisected down to the poison events', async () => {
    const events = Array.from({ length: 8 }, (_, i) => scoreEvent({ user_id: `u${i}` }));
    const poison = new Set(['u2', 'u7']);
    const calls: number[] = [];
    const repo: BatchRepository = {
      async applyBatch(_shard, _project, batch) {
        calls.push(batch.length);
        if (batch.some((e) => poison.has(e.user_id))) throw new InvalidBatchError('value too long', '22001', undefined);
        return ok(batch);
      },
    };
    const out = await persistBatch('na', events, repo);
    expect(out.refused).to.deep.equal([undefined, undefined, 'value too long', undefined, undefined, undefined, undefined, 'value too long']);
    expect(out.counts.inserted).to.equal(6);
    expect(out.transactions).to.equal(calls.length);
  });
});
