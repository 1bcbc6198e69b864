/**
 * The orchestration behind `npm start`, run the way end-to-end tests and the
 * benchmark use it: startStack on a temporary data directory with ephemeral
 * ports, traffic through nginx, a gateway killed and restarted, then stop.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import pg from 'pg';
import { findBinary, METRICS_BINARIES } from '@lb/devtools/infra';
import { pidAlive } from '../scripts/stack/proc.js';
import { startStack, type Stack } from '../scripts/stack/stack.js';
import { readStackFile } from '../scripts/stack/state.js';

const missing = (['redis-server', 'postgres', 'initdb', 'nginx', ...METRICS_BINARIES] as const).filter((b) => !findBinary(b));

async function json(url: string, init?: RequestInit): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

async function eventually<T>(fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`not true within ${timeoutMs} ms`);
    await sleep(100);
  }
}

describe('startStack (end to end)', function () {
  this.timeout(240_000);
  let dataDir: string;
  let stack: Stack | undefined;
  const lines: string[] = [];

  before(function () {
    if (missing.length > 0) {
      console.log(`      (skipped: ${missing.join(', ')} not installed; npm test installs them via scripts/bootstrap.mjs)`);
      this.skip();
    }
  });
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'lb-stack-'));
    lines.length = 0;
  });
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('when started on ephemeral ports, then nginx serves, a killed gateway is routed around and restarted, and stop leaves nothing', async () => {
    stack = await startStack({
      dataDir,
      // The sources: these tests must not depend on a fresh build (test/build.e2e.test.ts runs the compiled services).
      code: 'source',
      ports: 'ephemeral',
      replicas: 2,
      gateways: 2,
      workers: 1,
      postgresFast: true,
      env: { ACCESS_LOG: 'false', LOG_LEVEL: 'warn' },
      log: (l) => lines.push(l),
    });
    expect(stack.components.map((c) => `${c.name}:${c.status}`)).to.deep.equal([
      // Each shard a primary and a replica (the default), then the three Sentinels.
      'redis-na:healthy', 'redis-na-b:healthy', 'redis-eu:healthy', 'redis-eu-b:healthy', 'redis-asia:healthy', 'redis-asia-b:healthy',
      'sentinel-1:healthy', 'sentinel-2:healthy', 'sentinel-3:healthy',
      'postgres:healthy',
      'leaderboard-service-1:healthy', 'leaderboard-service-2:healthy',
      'worker-service-1:healthy',
      'api-gateway-1:healthy', 'api-gateway-2:healthy',
      'nginx:healthy',
      // Metrics are on by default: the exporters after what they watch, Prometheus last.
      'redis-exporter-na:healthy', 'redis-exporter-eu:healthy', 'redis-exporter-asia:healthy',
      'postgres-exporter:healthy', 'nginx-exporter:healthy',
      'prometheus:healthy',
    ]);
    const recorded = readStackFile(dataDir)!;
    expect(recorded.supervisorPid).to.equal(process.pid);
    expect(recorded.components.map((c) => c.name)).to.include.members(['redis-na', 'postgres', 'nginx', 'api-gateway-2']);

    const user = `stack_${process.pid}`;
    const reg = await json(`${stack.url}/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'stack-e2e-1' },
      body: JSON.stringify({ user_id: user, name: 'Stack', region: 'ASIA', password: 'a long enough password', initialScore: 7 }),
    });
    expect(reg.status, JSON.stringify(reg.body)).to.equal(201);
    expect(reg.headers.get('x-upstream-addr')).to.match(/^127\.0\.0\.1:\d+$/);
    expect(reg.headers.get('x-request-id')).to.equal('stack-e2e-1');
    const top = await json(`${stack.url}/top?region=ASIA&limit=5`);
    expect(top.body.rows.map((r: { user_id: string }) => r.user_id)).to.include(user);

    // The worker persists into the shard's own database.
    const asia = stack.topology.shards.find((s) => s.id === 'asia')!;
    const row = await eventually(async () => {
      const client = new pg.Client({ connectionString: asia.postgres });
      await client.connect();
      try {
        const r = await client.query('SELECT score FROM leaderboard WHERE user_id = $1', [user]);
        return r.rows[0] as { score: string } | undefined;
      } finally {
        await client.end();
      }
    }, 20_000);
    expect(Number(row.score)).to.equal(7);

    const gateway = stack.component('api-gateway-1');
    await stack.kill('api-gateway-1');
    expect(stack.component('api-gateway-1').status).to.equal('exited');
    for (let i = 0; i < 4; i++) {
      const health = await json(`${stack.url}/health`);
      expect(health.status).to.equal(200);
      expect(health.headers.get('x-upstream-addr')).to.match(new RegExp(`127\\.0\\.0\\.1:${stack.component('api-gateway-2').port}$`));
    }
    const restarted = await stack.restart('api-gateway-1');
    expect(restarted).to.include({ status: 'healthy', port: gateway.port });
    expect(restarted.pid).not.to.equal(gateway.pid);
    // A deliberate kill is not reported as a crash.
    expect(lines.join('\n')).not.to.include('exited unexpectedly');

    const pids = stack.components.map((c) => c.pid!);
    await stack.stop();
    expect(stack.components.every((c) => c.status === 'stopped'), JSON.stringify(stack.components)).to.equal(true);
    expect(pids.filter((p) => pidAlive(p))).to.deep.equal([]);
    expect(readStackFile(dataDir)).to.equal(undefined);
  });

  it('when a component cannot start and strict is on, then the start fails naming it and stops the rest', async () => {
    let error: Error | undefined;
    try {
      stack = await startStack({
        dataDir,
        code: 'source',
        ports: 'ephemeral',
        replicas: 1,
        gateways: 1,
        postgresFast: true,
        envFor: { worker: { BATCH_SIZE: '0' } },
        log: (l) => lines.push(l),
      });
    } catch (e) {
      error = e as Error;
    }
    expect(error?.message).to.match(/worker-service-1 exited while starting \(code 2\)/);
    expect(error?.message).to.include('config BATCH_SIZE: must be >= 1');
    const pids = lines.flatMap((l) => [...l.matchAll(/\(pid (\d+)\)/g)].map((m) => Number(m[1])));
    expect(pids.length).to.be.greaterThan(4);
    expect(pids.filter((p) => pidAlive(p))).to.deep.equal([]);
    expect(readStackFile(dataDir)).to.equal(undefined);
  });
});
