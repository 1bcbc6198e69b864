import { expect } from 'chai';
import { ConfigError } from '../src/platform/config.js';
import { DEFAULT_TOPOLOGY, loadTopology, topologyJson, validateTopology } from '../src/platform/topology.js';

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
    const urls = t.shards.map((s) => (s.redis.kind === 'server' ? s.redis.url : ''));
    expect(new Set(urls).size).to.equal(3);
    for (const u of urls) expect(u).to.match(/^redis:\/\/127\.0\.0\.1:\d+$/).and.not.contain(':6379');
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
    const ha = (id: string) => ({ id, sentinel: `lb-${id}`, postgres: `postgres://u@127.0.0.1:2/${id}` });
    expectConfigError(() => validateTopology({ shards: [ha('a')] }), 'TOPOLOGY.sentinels');
    expectConfigError(() => validateTopology({ sentinels: [], shards: [ha('a')] }), 'TOPOLOGY.sentinels');
    expectConfigError(() => validateTopology({ sentinels: ['127.0.0.1'], shards: [ha('a')] }), 'TOPOLOGY.sentinels[0]');
    expectConfigError(() => validateTopology({ sentinels: ['127.0.0.1:70000'], shards: [ha('a')] }), 'TOPOLOGY.sentinels[0]');
    expectConfigError(() => validateTopology({ sentinels: ['127.0.0.1:1'], shards: [{ ...ha('a'), redis: 'redis://x:1' }] }), 'TOPOLOGY.shards[0].redis');
    expectConfigError(() => validateTopology({ sentinels: ['127.0.0.1:1'], shards: [{ ...ha('a'), sentinel: 'no spaces' }] }), 'TOPOLOGY.shards[0].sentinel');
    expectConfigError(() => validateTopology({ sentinels: ['127.0.0.1:1'], shards: [ha('a'), { ...ha('b'), sentinel: 'lb-a' }] }), 'TOPOLOGY.shards[1].sentinel');
    expectConfigError(() => loadTopology({ TOPOLOGY_FILE: '/nonexistent/topology.json' }), 'TOPOLOGY_FILE');
  });

  it('when shards name Sentinel master names, then each finds its primary through the listed Sentinels, and the JSON form reads back to the same topology', () => {
    const json = {
      sentinels: ['127.0.0.1:26391', 'sentinel-2:26379'],
      shards: [
        { id: 'na', sentinel: 'lb-na', postgres: 'postgres://u@127.0.0.1:2/na' },
        { id: 'eu', redis: 'redis://127.0.0.1:6392', postgres: 'postgres://u@127.0.0.1:2/eu' },
      ],
      regions: { NA: 'na', EU: 'eu' },
    };
    const t = validateTopology(json);
    expect(t.shards[0]!.redis).to.deep.equal({ kind: 'sentinel', master: 'lb-na', sentinels: [{ host: '127.0.0.1', port: 26391 }, { host: 'sentinel-2', port: 26379 }] });
    expect(t.shards[1]!.redis).to.deep.equal({ kind: 'server', url: 'redis://127.0.0.1:6392' });
    expect(JSON.parse(topologyJson(t))).to.deep.equal(json);
    expect(validateTopology(JSON.parse(topologyJson(t)))).to.deep.equal(t);
    expect(JSON.parse(topologyJson(DEFAULT_TOPOLOGY))).to.not.have.property('sentinels');
  });
});
