/**
 * The worker's /metrics after real jobs: batch sizes, persistence lag, jobs
 * by outcome, and the backlog and dead-letter gauges read from Redis at
 * scrape time.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { expect } from 'chai';
import { Redis, type RedisOptions } from 'ioredis';
import { jobIdOf, shardKeys } from '@lb/common/contracts';
import { connectionFor, createLogger, METRIC, startMetricsServer } from '@lb/common/platform';
import { getInfra, scrape, valueOf } from '@lb/devtools/testing';
import { startWorkerService, type WorkerService } from '../src/service.js';
import { idle, scoreEvent, ShardQueue, testConfig, waitFor } from './support/worker.js';

describe('worker-service metrics', function () {
  this.timeout(30_000);
  let service: WorkerService | undefined;
  let queue: ShardQueue | undefined;
  let metricsServer: Server | undefined;
  let redis: Redis | undefined;

  after(async () => {
    metricsServer?.close();
    await service?.close();
    await queue?.destroy();
    redis?.disconnect();
  });

  it('when 12 events persist and 1 job is malformed, then batches hold 12 events, 12 lags are observed, jobs count 12 completed and 1 failed, and the gauges read 1 dead letter and the backlog left in the outbox', async () => {
    const config = await testConfig({ BATCH_SIZE: '100' });
    const na = (await getInfra()).topology.shards.find((s) => s.id === 'na')!;
    const outbox = shardKeys('na', config.keyPrefix).outbox;
    // Written 2 s ago: every lag is at least 2 s.
    const events = Array.from({ length: 12 }, () => scoreEvent({ ts: Date.now() - 2000 }));
    redis = new Redis(connectionFor(na.redis, false) as RedisOptions);
    // The outbox as the service leaves it: each event until persisted, plus one nobody sends.
    await redis.hset(outbox, Object.fromEntries([...events.map((e) => [jobIdOf(e), JSON.stringify(e)]), ['stray#1', '{}']]));

    service = await startWorkerService({ ...config, shards: ['na'] }, { log: createLogger('test', 'silent') });
    metricsServer = await startMetricsServer(service.metrics.registry, '127.0.0.1', 0, createLogger('test', 'silent'));
    const url = `http://127.0.0.1:${(metricsServer.address() as AddressInfo).port}/metrics`;
    queue = new ShardQueue(na, config.keyPrefix, { attempts: 1, backoffMs: 50 });
    await queue.add([...events, { user_id: 'broken', version: 'x' }]);
    await waitFor('the queue to drain', async () => (await idle(queue!)) && (await queue!.counts()).failed === 1);

    let m = await scrape(url);
    await waitFor('12 completed jobs counted', async () => {
      m = await scrape(url);
      return valueOf(m, METRIC.jobs, { shard: 'na', outcome: 'completed' }) === 12;
    });
    expect(valueOf(m, METRIC.jobs, { shard: 'na', outcome: 'failed' })).to.equal(1);
    expect(valueOf(m, `${METRIC.batchEvents}_sum`, { shard: 'na' })).to.equal(12);
    expect(valueOf(m, `${METRIC.persistLag}_count`, { shard: 'na' })).to.equal(12);
    expect(valueOf(m, `${METRIC.persistLag}_bucket`, { shard: 'na', le: '1' })).to.equal(0);
    expect(valueOf(m, `${METRIC.persistLag}_sum`, { shard: 'na' })).to.be.at.least(24);
    expect(valueOf(m, `${METRIC.pgDuration}_count`, { shard: 'na', op: 'batch' })).to.equal(valueOf(m, `${METRIC.batchEvents}_count`, { shard: 'na' }));
    expect(valueOf(m, METRIC.deadLetters, { shard: 'na' })).to.equal(1);
    expect(valueOf(m, METRIC.backlog, { shard: 'na' })).to.equal(1);
    expect(m.some((s) => s.labels.shard === 'eu')).to.equal(false);
  });
});

