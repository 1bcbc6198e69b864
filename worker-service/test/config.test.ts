import { expect } from 'chai';
import { ConfigError, DEFAULT_TOPOLOGY } from '@lb/common/platform';
import { loadConfig } from '../src/config.js';

describe('worker-service config', () => {
  it('when nothing is set, then the documented defaults apply and every shard is consumed', () => {
    const c = loadConfig({});
    expect(c).to.deep.include({
      batchSize: 500,
      batchMaxWaitMs: 50,
      concurrency: 200,
      lockMs: 30_000,
      stalledIntervalMs: 30_000,
      maxStalledCount: 3,
      keyPrefix: 'lb',
      healthPort: undefined,
      instanceId: 'worker-1',
    });
    expect(c.jobPolicy).to.deep.equal({ attempts: 10, backoffMs: 500 });
    expect(c.shards).to.deep.equal(DEFAULT_TOPOLOGY.shards.map((s) => s.id));
    expect(Object.isFrozen(c)).to.equal(true);
  });

  it('when WORKER_CONCURRENCY is 0 or unset, then it follows BATCH_SIZE; when set, it wins', () => {
    expect(loadConfig({ BATCH_SIZE: '50' }).concurrency).to.equal(100);
    expect(loadConfig({ BATCH_SIZE: '200' }).concurrency).to.equal(200);
    expect(loadConfig({ BATCH_SIZE: '200', WORKER_CONCURRENCY: '50' }).concurrency).to.equal(50);
  });

  it('when WORKER_SHARDS lists shards, then they are consumed in topology order, once each', () => {
    expect(loadConfig({ WORKER_SHARDS: 'asia, na,asia' }).shards).to.deep.equal(['na', 'asia']);
    expect(loadConfig({ WORKER_SHARDS: 'ALL' }).shards).to.have.length(3);
  });

  it('when a value is bad, then ConfigError names the key', () => {
    const key = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (e) {
        expect(e).to.be.instanceOf(ConfigError);
        return [(e as ConfigError).key, (e as Error).message];
      }
      throw new Error('no error');
    };
    expect(key({ WORKER_SHARDS: 'na,mars' })).to.deep.equal(['WORKER_SHARDS', 'config WORKER_SHARDS: unknown shard "mars" (topology has na, eu, asia)']);
    expect(key({ WORKER_SHARDS: ' , ' })[0]).to.equal('WORKER_SHARDS');
    expect(key({ BATCH_SIZE: '0' })[0]).to.equal('BATCH_SIZE');
    expect(key({ HEALTH_PORT: '70000' })[0]).to.equal('HEALTH_PORT');
    expect(key({ WORKER_LOCK_MS: 'soon' })[0]).to.equal('WORKER_LOCK_MS');
  });

  it('when HEALTH_PORT is 0, then an ephemeral port is asked for; empty means no endpoint', () => {
    expect(loadConfig({ HEALTH_PORT: '0' }).healthPort).to.equal(0);
    expect(loadConfig({ HEALTH_PORT: '' }).healthPort).to.equal(undefined);
  });
});
