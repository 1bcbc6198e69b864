/**
 * Failover with real replicas: one killed under load and restarted on the
 * same port, then all of them stopped. Replicas 1 and 3 come from
 * startService; replica 2 runs on a server the test controls, so it can be
 * stopped like a dying process (see ControlledReplica.kill).
 */
import { expect } from 'chai';
import { uniqueId } from '@lb/devtools/testing';
import { Client, type Reply, type TestService } from '../../leaderboard-service/test/support/service.js';
import { eventually, startGateway, type TestGateway } from './support/gateway.js';
import { startControlledReplica, startReplicas } from './support/replicas.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('api-gateway failover with real replicas', () => {
  let replicas: TestService[];
  let victimUrl: string;
  let gw: TestGateway;
  let api: Client;
  /** Stops each running replica once (tests stop some of them themselves). */
  const running = new Map<string, () => Promise<void>>();
  const stopReplica = async (url: string) => {
    const stop = running.get(url);
    running.delete(url);
    await stop?.();
  };

  before(async () => {
    replicas = await startReplicas(2);
    for (const r of replicas) running.set(r.url, () => r.stop());
    const victim = await startControlledReplica({ ...replicas[0]!.config, instanceId: 'replica-2' });
    victimUrl = victim.url;
    running.set(victim.url, () => victim.kill());
    gw = await startGateway(
      [replicas[0]!.url, victim.url, replicas[1]!.url],
      { UPSTREAM_TIMEOUT_MS: '10000', UPSTREAM_COOLOFF_MS: '300', PROBE_INTERVAL_MS: '50' },
    );
    api = new Client(gw.url);
  });
  after(async () => {
    await gw?.stop();
    for (const url of [...running.keys()]) await stopReplica(url);
  });

  it('when a replica dies under load, then reads keep succeeding, writes succeed or fail cleanly, and it is re-admitted after a restart on its port', async () => {
    const player = uniqueId('fo');
    const token = await api.register(player, 'EU', { initialScore: 10 });
    const victim = { url: victimUrl, port: Number(new URL(victimUrl).port) };
    const reads: Reply[] = [];
    const writes: Reply[] = [];
    let stopAt = 0;
    let stoppedAt = 0;
    const until = Date.now() + 1500;

    const reader = async () => {
      while (Date.now() < until) reads.push(await api.get(`/rank/${player}?region=EU`));
    };
    const writer = async () => {
      while (Date.now() < until) writes.push(await api.post('/score/add', { delta: 1 }, { token }));
    };
    const killer = async () => {
      await sleep(400);
      stopAt = reads.length;
      await stopReplica(victim.url);
      stoppedAt = reads.length;
    };
    await Promise.all([reader(), reader(), reader(), writer(), killer()]);

    const failedReads = reads.filter((r) => r.status !== 200);
    expect(failedReads.map((r) => r.body), 'every read succeeds').to.deep.equal([]);
    expect(reads.length - stopAt, 'reads after the stop').to.be.greaterThan(20);
    for (const w of writes) {
      if (w.status === 200) continue;
      expect(w.status, JSON.stringify(w.body)).to.be.oneOf([502, 504]);
      expect(w.body.error).to.be.oneOf(['bad_gateway', 'gateway_timeout']);
    }
    const ok = writes.filter((w) => w.status === 200).length;
    expect(ok).to.be.greaterThan(5);
    // A write that failed at the gateway may or may not have been applied; none is applied twice.
    const score = (await api.get(`/rank/${player}?region=EU`)).body.score as number;
    expect(score).to.be.within(10 + ok, 10 + writes.length);

    const health = await api.get('/health');
    expect(health.status).to.equal(200);
    const down = health.body.upstreams.find((u: { url: string }) => u.url === victim.url);
    expect(down.healthy).to.equal(false);
    expect(down.last_error).to.match(/ECONNREFUSED|health check failed/);
    // Each of the three readers may have had one read in flight when the stop completed.
    const afterStop = new Set(reads.slice(stoppedAt + 3).map((r) => r.headers.get('x-upstream')));
    expect(afterStop.size, 'reads after the stop went to the two others').to.equal(2);
    expect(afterStop.has(victim.url), 'no reads served by the stopped replica').to.equal(false);

    const restarted = await startControlledReplica({ ...replicas[0]!.config, instanceId: 'replica-2' }, victim.port);
    running.set(victim.url, () => restarted.kill());
    await eventually(async () => (await api.get('/health')).body.upstreams.every((u: { healthy: boolean }) => u.healthy), 3000);
    const servedBy = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const r = await api.get(`/rank/${player}?region=EU`);
      expect(r.status).to.equal(200);
      expect(r.body.score).to.equal(score);
      servedBy.add(r.headers.get('x-upstream')!);
    }
    expect(servedBy.has(victim.url), 're-admitted replica serves again').to.equal(true);
  });

  it('when every replica is stopped, then reads and writes get 502 bad_gateway JSON and /health is 503', async () => {
    const token = await api.register(uniqueId('fo'), 'NA');
    for (const url of [...running.keys()]) await stopReplica(url);
    const read = await api.get('/top?region=NA');
    expect(read.status).to.equal(502);
    expect(read.body).to.have.keys('error', 'message');
    expect(read.body.error).to.equal('bad_gateway');
    expect(read.headers.get('content-type')).to.match(/^application\/json/);
    const write = await api.post('/score/add', { delta: 1 }, { token });
    expect(write.status).to.equal(502);
    expect(write.body.error).to.equal('bad_gateway');
    const health = await api.get('/health');
    expect(health.status).to.equal(503);
    expect(health.body.ok).to.equal(false);
    expect(health.body.upstreams).to.have.length(3);
    for (const u of health.body.upstreams) expect(u.healthy).to.equal(false);
  });
});
