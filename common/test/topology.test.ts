import { expect } from 'chai';
import { ConfigError } from '../src/platform/config.js';
import { DEFAULT_TOPOLOGY, loadTopology, validateTopology } from '../src/platform/topology.js';

const shard = (id: string) => ({ id, redis: `redis://127.0.0.1:1/${id}`, postgres: `postgres://u@127.0.0.1:2/${id}` });

function expectConfigError(fn: () => unknown, key: string) {
  try {
    fn();
  } catch (e) {
    expect(e).to.be.instanceOf(ConfigError);
    expect((e as ConfigError).key).to.equal(key);
    expect((e as Error).message).to.contain(key);
    return;
  }
  expect.fail(`expected a ConfigError naming ${key}`);
}

describe('topology config', () => {
  it('when nothing is set, then the default has NA, EU, ASIA on three shards', () => {
    const t = loadTopology({});
    expect(t).to.equal(DEFAULT_TOPOLOGY);
    expect(t.regions).to.deep.equal({ NA: 'na', EU: 'eu', ASIA: 'asia' });
    expect(new Set(t.shards.map((s) => s.redis)).size).to.equal(3);
    for (const s of t.shards) expect(s.redis).to.not.contain(':6379');
    for (const s of t.shards) expect(s.postgres).to.not.contain(':5432/');
  });

  it('when TOPOLOGY is inline JSON with regions sharing a shard, then it is accepted', () => {
    const t = loadTopology({ TOPOLOGY: JSON.stringify({ shards: [shard('a'), shard('b')], regions: { NA: 'a', SA: 'a', EU: 'b' } }) });
    expect(t.regions).to.deep.equal({ NA: 'a', SA: 'a', EU: 'b' });
  });

  it('when a region names an unknown shard, then start-up fails naming the region key', () => {
    expectConfigError(() => validateTopology({ shards: [shard('a')], regions: { EU: 'zz' } }), 'TOPOLOGY.regions.EU');
  });

  it('when an entry is malformed, then the error names that exact key', () => {
    expectConfigError(() => validateTopology({ shards: [] }), 'TOPOLOGY.shards');
    expectConfigError(() => validateTopology({ shards: [{ ...shard('a'), redis: 'http://x' }] }), 'TOPOLOGY.shards[0].redis');
    expectConfigError(() => validateTopology({ shards: [shard('a'), shard('a')] }), 'TOPOLOGY.shards[1].id');
    expectConfigError(() => validateTopology({ shards: [{ ...shard('a'), id: 'Bad:Id' }] }), 'TOPOLOGY.shards[0].id');
    expectConfigError(() => validateTopology({ shards: [{ ...shard('a'), extra: 1 }] }), 'TOPOLOGY.shards[0].extra');
    expectConfigError(() => validateTopology({ shards: [shard('a')], regions: { GLOBAL: 'a' } }), 'TOPOLOGY.regions.GLOBAL');
    expectConfigError(() => validateTopology({ shards: [shard('a')], regions: { 'e u': 'a' } }), 'TOPOLOGY.regions.e u');
    expectConfigError(() => validateTopology({ shards: [shard('a')], colour: 'red' }), 'TOPOLOGY.colour');
    expectConfigError(() => loadTopology({ TOPOLOGY: '{nope' }), 'TOPOLOGY');
    expectConfigError(() => loadTopology({ TOPOLOGY_FILE: '/nonexistent/topology.json' }), 'TOPOLOGY_FILE');
  });
});
