import { expect } from 'chai';
import { UpstreamPool, type Upstream } from '../src/upstreams.js';

const URLS = ['http://127.0.0.1:5001', 'http://127.0.0.1:5002', 'http://127.0.0.1:5003'];

function fakeClock(start = 1_000_000) {
  const clock = { t: start, now: () => clock.t };
  return clock;
}

const urlsOf = (picks: (Upstream | undefined)[]) => picks.map((u) => u?.url);
const pickN = (pool: UpstreamPool, n: number) => Array.from({ length: n }, () => pool.pick());

describe('api-gateway upstream pool', () => {
  it('when every replica is healthy, then picks go round robin in configured order', () => {
    const pool = new UpstreamPool(URLS, 1000);
    expect(urlsOf(pickN(pool, 6))).to.deep.equal([...URLS, ...URLS]);
  });

  it('when a replica is marked down, then picks skip it and alternate over the others', () => {
    const pool = new UpstreamPool(URLS, 1000);
    expect(pool.markDown(pool.all[1]!, 'connect failed: ECONNREFUSED')).to.equal(true);
    expect(urlsOf(pickN(pool, 4))).to.deep.equal([URLS[0], URLS[2], URLS[0], URLS[2]]);
    expect(pool.view()[1]).to.deep.equal({ url: URLS[1], healthy: false, last_error: 'connect failed: ECONNREFUSED' });
  });

  it('when replicas were already tried, then pick returns the next healthy untried one or undefined', () => {
    const pool = new UpstreamPool(URLS, 1000);
    const first = pool.pick()!;
    const second = pool.pick([first])!;
    expect(second.url).to.equal(URLS[1]);
    const third = pool.pick([first, second])!;
    expect(third.url).to.equal(URLS[2]);
    expect(pool.pick([first, second, third])).to.equal(undefined);
  });

  it('when every replica is down, then pick returns undefined and anyHealthy is false', () => {
    const pool = new UpstreamPool(URLS, 1000);
    for (const u of pool.all) pool.markDown(u, 'x');
    expect(pool.pick()).to.equal(undefined);
    expect(pool.anyHealthy()).to.equal(false);
  });

  it('when the cool-off has not passed, then the replica is not probed; after it, it is due and markUp re-admits it', () => {
    const clock = fakeClock();
    const pool = new UpstreamPool(URLS, 500, clock.now);
    const down = pool.all[0]!;
    pool.markDown(down, 'no answer within 100 ms');
    clock.t += 499;
    expect(pool.dueForProbe()).to.deep.equal([]);
    clock.t += 1;
    expect(pool.dueForProbe()).to.deep.equal([down]);
    pool.probeFailed(down, 'health check answered 503');
    expect(pool.dueForProbe(), 'a failed probe keeps it due for the next tick').to.deep.equal([down]);
    expect(pool.view()[0]!.last_error).to.equal('health check answered 503');
    expect(pool.markUp(down)).to.equal(true);
    expect(pool.markUp(down)).to.equal(false);
    expect(pool.dueForProbe()).to.deep.equal([]);
    expect(urlsOf(pickN(pool, 3)).sort()).to.deep.equal([...URLS].sort());
  });

  it('when a replica already out fails again, then its cool-off is not extended and no transition is reported', () => {
    const clock = fakeClock();
    const pool = new UpstreamPool(URLS, 500, clock.now);
    const u = pool.all[2]!;
    expect(pool.markDown(u, 'first')).to.equal(true);
    clock.t += 400;
    expect(pool.markDown(u, 'second')).to.equal(false);
    clock.t += 100;
    expect(pool.dueForProbe()).to.deep.equal([u]);
    expect(u.lastError).to.equal('second');
  });

  it('when health changes at random, then every window of N picks covers exactly the healthy replicas', () => {
    const urls = Array.from({ length: 7 }, (_, i) => `http://127.0.0.1:${6000 + i}`);
    const pool = new UpstreamPool(urls, 0);
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let round = 0; round < 300; round++) {
      for (const u of pool.all) {
        if (rand() < 0.3) pool.markDown(u, 'x');
        else pool.markUp(u);
      }
      const healthy = pool.all.filter((u) => u.healthy).map((u) => u.url).sort();
      const picks = pickN(pool, healthy.length).map((u) => u!.url).sort();
      expect(picks).to.deep.equal(healthy);
      if (healthy.length === 0) expect(pool.pick()).to.equal(undefined);
    }
  });
});
