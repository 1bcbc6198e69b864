/**
 * The gateway's /metrics after real traffic: one replica refuses
 * connections, the other answers, and the counters say so exactly.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { expect } from 'chai';
import { createLogger, METRIC, startMetricsServer } from '@lb/common/platform';
import { scrape, valueOf, type Sample } from '@lb/devtools/testing';
import { startGateway, type TestGateway } from './support/gateway.js';
import { deadPort, startEcho, type TestUpstream } from './support/upstreams.js';

describe('api-gateway metrics', function () {
  this.timeout(20_000);
  let echo: TestUpstream;
  let dead: string;
  let gw: TestGateway;
  let metricsServer: Server;
  let metricsUrl: string;

  before(async () => {
    echo = await startEcho();
    dead = `http://127.0.0.1:${await deadPort()}`;
    // The refusing replica stays out of rotation for the whole test once it failed.
    gw = await startGateway([dead, echo.url], { UPSTREAM_COOLOFF_MS: '600000' });
    metricsServer = await startMetricsServer(gw.deps.metrics.registry, '127.0.0.1', 0, createLogger('test', 'silent'));
    metricsUrl = `http://127.0.0.1:${(metricsServer.address() as AddressInfo).port}/metrics`;
  });
  after(async () => {
    metricsServer?.close();
    await gw?.stop();
    await echo?.stop();
  });

  const delta = (a: Sample[], b: Sample[], name: string, labels: Record<string, string> = {}) => valueOf(b, name, labels) - valueOf(a, name, labels);

  it('when a replica refuses connections, then one connect failure, one retry and one failover are counted, every request is answered by the other, and the dead one shows as down', async () => {
    const before = await scrape(metricsUrl);
    for (let i = 0; i < 4; i++) expect((await fetch(`${gw.url}/top?region=EU`)).status).to.equal(200);
    // Refused at the gateway (no token): never reaches a replica.
    expect((await fetch(`${gw.url}/score/add`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"delta":1}' })).status).to.equal(401);
    const after = await scrape(metricsUrl);

    expect(delta(before, after, METRIC.upstreamAttempts, { replica: dead, outcome: 'connect_failed' })).to.equal(1);
    expect(delta(before, after, METRIC.upstreamAttempts, { replica: echo.url, outcome: 'answered' })).to.equal(4);
    expect(delta(before, after, METRIC.upstreamAttempts)).to.equal(5);
    expect(delta(before, after, METRIC.upstreamRetries)).to.equal(1);
    expect(delta(before, after, METRIC.upstreamFailovers)).to.equal(1);
    expect(valueOf(after, METRIC.replicaUp, { replica: dead })).to.equal(0);
    expect(valueOf(after, METRIC.replicaUp, { replica: echo.url })).to.equal(1);

    const h = `${METRIC.httpDuration}_count`;
    expect(delta(before, after, h, { route: '/top', method: 'GET', status: '200' })).to.equal(4);
    expect(delta(before, after, h, { route: '/score/add', method: 'POST', status: '401' })).to.equal(1);
    expect(after.every((s) => s.labels.service === 'api-gateway')).to.equal(true);
  });
});
