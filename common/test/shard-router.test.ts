import { expect } from 'chai';
import { AppError } from '../src/contracts/errors.js';
import { ShardRouter } from '../src/contracts/shard-router.js';
import { validateTopology } from '../src/platform/topology.js';

const shard = (id: string) => ({ id, redis: `redis://127.0.0.1:1/${id}`, postgres: `postgres://u@127.0.0.1:2/${id}` });
const topo = (ids: string[], regions: Record<string, string>) => validateTopology({ shards: ids.map(shard), regions });

describe('shard router', () => {
  const router = new ShardRouter(topo(['na', 'eu', 'asia'], { NA: 'na', EU: 'eu', ASIA: 'asia', SA: 'na' }));

  it('when a player has a home region, then the region decides the shard', () => {
    expect(router.homeShard('anyone', 'EU').id).to.equal('eu');
    expect(router.homeShard('anyone', 'SA').id).to.equal('na');
    expect(router.shardsForBoard('ASIA').map((s) => s.id)).to.deep.equal(['asia']);
    expect(router.shardsForBoard('GLOBAL').map((s) => s.id)).to.deep.equal(['na', 'eu', 'asia']);
  });

  it('when region names differ in case, then they normalise; unknown ones are 400 unknown_region', () => {
    expect(router.normalizeRegion('eu')).to.equal('EU');
    expect(router.normalizeRegion('Global')).to.equal('GLOBAL');
    expect(router.normalizeRegion(undefined)).to.equal('GLOBAL');
    for (const bad of ['MARS', ['EU'], 'x'.repeat(100)]) {
      expect(() => router.normalizeRegion(bad)).to.throw(AppError).with.property('code', 'unknown_region');
    }
  });

  it('when GLOBAL players are hashed, then placement is stable and spread over every shard', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const id = router.homeShard(`player-${i}`, 'GLOBAL').id;
      expect(router.homeShard(`player-${i}`, 'GLOBAL').id).to.equal(id);
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    for (const id of ['na', 'eu', 'asia']) expect(counts.get(id)).to.be.within(800, 1200);
  });

  it('when a shard is added, then only players moving to the new shard change place', () => {
    const bigger = new ShardRouter(topo(['na', 'eu', 'asia', 'oce'], { NA: 'na' }));
    let moved = 0;
    for (let i = 0; i < 3000; i++) {
      const before = router.hashShard(`p${i}`).id;
      const after = bigger.hashShard(`p${i}`).id;
      if (before !== after) {
        expect(after).to.equal('oce');
        moved++;
      }
    }
    expect(moved).to.be.within(500, 1000);
  });
});
