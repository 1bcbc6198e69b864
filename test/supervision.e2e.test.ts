/**
 * The stack's supervision, with real processes: components killed by PID
 * from outside (a crash, as far as the stack can tell) come back on the same
 * port with the same data; one that cannot start is left down after its
 * restarts; kills and stops through the Stack API are never undone; and
 * `npm run status` reports all of it from stack.json.
 *
 * One stack, shared by the tests in order, with Redis replicas and
 * Sentinels (the default): a Redis primary killed by PID comes back, by the
 * restart rule, as the replica of the node Sentinel promoted, and a node
 * frozen with SIGSTOP is failed over but never restarted. Its worker is
 * given a setting it refuses (BATCH_SIZE=0), so it is the component that
 * always crashes.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import pg from 'pg';
import { findBinary, redisCommand } from '@lb/devtools/infra';
import { REPO_ROOT } from '../scripts/stack/paths.js';
import { childPids, pidAlive } from '../scripts/stack/proc.js';
import { startStack, type ComponentInfo, type Stack } from '../scripts/stack/stack.js';
import { readStackFile } from '../scripts/stack/state.js';
import { call, eventually } from './support/e2e.js';

const missing = (['redis-server', 'redis-sentinel', 'postgres', 'initdb', 'nginx'] as const).filter((b) => !findBinary(b));

/** Small numbers so that giving up takes seconds, not minutes. */
const RESTART = { maxRestarts: 2, windowMs: 60_000, backoffMs: 500, maxBackoffMs: 1_000 };

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `npm run status -- args` as a child process: through scripts/bootstrap.mjs, as npm runs it. */
function runStatus(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...env };
    if (!('STACK_DATA_DIR' in env)) delete childEnv.STACK_DATA_DIR;
    execFile(
      process.execPath,
      [join(REPO_ROOT, 'scripts', 'bootstrap.mjs'), 'status', ...args],
      { cwd: REPO_ROOT, env: childEnv, timeout: 30_000 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}

/** True if something accepts TCP connections on 127.0.0.1:`port`. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

describe('stack supervision (end to end)', function () {
  this.timeout(150_000);
  let dataDir: string;
  let stack: Stack | undefined;
  const lines: string[] = [];
  /** Every pid any component had, to check that stop leaves none behind. */
  const pids = new Set<number>();

  const s = (): Stack => stack!;
  const logText = (): string => lines.join('\n');

  /**
   * Waits until `name` runs healthy again under a pid other than `oldPid`,
   * as long as the supervisor itself would wait for it (healthTimeoutMs,
   * 60 s): a replica restarted from source on a loaded 2-core machine took
   * over 20 s (tsx, then its connections), and a shorter bound here failed
   * a restart that was on its way.
   */
  function backHealthy(name: string, oldPid: number | undefined, timeoutMs = 60_000): Promise<ComponentInfo> {
    return eventually(
      async () => {
        const c = s().component(name);
        return c.status === 'healthy' && c.pid !== undefined && c.pid !== oldPid ? c : undefined;
      },
      timeoutMs,
      `${name} healthy again under a new pid`,
    );
  }

  /** Kills a component the way an operator's `kill -9 <pid>` would: the stack is not told. */
  function killByPid(name: string): ComponentInfo {
    const c = s().component(name);
    expect(c.pid, `${name} has a pid`).to.be.a('number');
    process.kill(c.pid!, 'SIGKILL');
    return c;
  }

  before(async function () {
    if (missing.length > 0) {
      console.log(`      (skipped: ${missing.join(', ')} not installed; npm test installs them via scripts/bootstrap.mjs)`);
      this.skip();
    }
    dataDir = mkdtempSync(join(tmpdir(), 'lb-supervision-'));
    stack = await startStack({
      dataDir,
      // The sources: these tests must not depend on a fresh build (test/build.e2e.test.ts runs the compiled services).
      code: 'source',
      ports: 'ephemeral',
      replicas: 2,
      gateways: 2,
      workers: 1,
      postgresFast: true,
      // Not strict: the worker fails to start, and the rest must start without it (as with npm start).
      strict: false,
      envFor: { worker: { BATCH_SIZE: '0' } },
      env: { ACCESS_LOG: 'false', LOG_LEVEL: 'warn' },
      restart: RESTART,
      log: (l) => lines.push(l),
    });
    for (const c of stack.components) if (c.pid) pids.add(c.pid);
  });

  let shown = 0;
  afterEach(function () {
    for (const c of stack?.components ?? []) if (c.pid) pids.add(c.pid);
    // What the stack said since the last failure: the first thing to read when a test fails.
    if (this.currentTest?.state === 'failed') console.log(lines.slice(shown).map((l) => `      | ${l}`).join('\n'));
    if (this.currentTest?.state === 'failed') shown = lines.length;
  });

  after(async () => {
    await stack?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  /** Waits until the Sentinels name `name` the primary of `shard` and it says it is one. */
  function primaryIs(shard: string, name: string): Promise<true> {
    return eventually(
      async () => ((await s().redisPrimary(shard))?.name === name && (await s().redisRole(name)).role === 'master' ? true : undefined),
      30_000,
      `${name} primary of ${shard}`,
    );
  }

  it('when the stack is up, then every shard is a primary with a replica in sync, behind three Sentinels', async () => {
    expect(s().redisReplicas).to.equal(true);
    expect(s().sentinelPorts).to.have.length(3);
    for (const shard of s().topology.shards) {
      expect(shard.redis).to.deep.include({ kind: 'sentinel', master: `lb-${shard.id}` });
      const [a, b] = s().redisNodes(shard.id);
      expect([a!.name, b!.name]).to.deep.equal([`redis-${shard.id}`, `redis-${shard.id}-b`]);
      expect((await s().redisRole(a!.name)).role).to.equal('master');
      const replica = await s().redisRole(b!.name);
      expect(replica).to.deep.include({ role: 'slave', master: { host: '127.0.0.1', port: a!.port }, linkUp: true });
      expect(await s().redisPrimary(shard.id)).to.deep.equal({ name: a!.name, address: { host: '127.0.0.1', port: a!.port } });
    }
  });

  it('when a Redis primary is killed by PID after a write, then the replica is promoted, and the killed node comes back on its port under a new pid as its replica, with the write', async () => {
    const before = s().component('redis-na');
    const b = s().component('redis-na-b');
    const key = `supervision:${process.pid}`;
    expect(await redisCommand(before.port!, ['SET', key, 'acknowledged'], 2000)).to.equal('OK');
    expect(await redisCommand(before.port!, ['WAIT', '1', '2000'], 3000)).to.equal(1);

    killByPid('redis-na');
    const after = await backHealthy('redis-na', before.pid);

    expect(after).to.include({ port: before.port, restarts: 1 });
    await primaryIs('na', 'redis-na-b');
    const role = await eventually(async () => {
      const r = await s().redisRole('redis-na');
      return r.role === 'slave' && r.linkUp ? r : undefined;
    }, 30_000, 'redis-na in sync with redis-na-b');
    expect(role.master).to.deep.equal({ host: '127.0.0.1', port: b.port });
    expect(await redisCommand(after.port!, ['GET', key], 2000)).to.equal('acknowledged');
    expect(await redisCommand(b.port!, ['GET', key], 2000)).to.equal('acknowledged');
    expect(logText()).to.match(/✖ redis-na \(port \d+\) exited unexpectedly/);
    expect(logText()).to.match(/redis-na: the Sentinels (name|promoted) 127\.0\.0\.1:\d+/);
    expect(logText()).to.match(new RegExp(`✔ redis-na healthy again on port ${before.port} \\(pid ${after.pid}; restarts: 1\\)`));
    // The services follow the Sentinels to the new primary: reads of that shard work again through nginx.
    await eventually(async () => ((await call(`${s().url}/top?region=NA&limit=1`)).status === 200 ? true : undefined), 60_000, 'NA reads through nginx');
  });

  it('when a Redis primary is frozen with SIGSTOP, then it is failed over, killed as hung and restarted as a replica of the promoted node', async () => {
    const frozen = s().component('redis-na-b');
    expect(s().sendSignal('redis-na-b', 'SIGSTOP')).to.include({ paused: true, status: 'healthy', pid: frozen.pid });
    await primaryIs('na', 'redis-na');
    // A hung node would keep the promoted one without a replica (and so without writes): the supervisor kills it after REDIS_HUNG_MS.
    const after = await backHealthy('redis-na-b', frozen.pid);
    expect(after).to.include({ port: frozen.port, restarts: frozen.restarts + 1, paused: false });
    const role = await eventually(async () => {
      const r = await s().redisRole('redis-na-b');
      return r.role === 'slave' && r.linkUp ? r : undefined;
    }, 30_000, 'redis-na-b a replica again');
    expect(role.master?.port).to.equal(s().component('redis-na').port);
    expect(logText()).to.match(new RegExp(`✖ redis-na-b \\(port ${frozen.port}, pid ${frozen.pid}\\) has not answered PING for [\\d.]+ s: hung; killing it`));
  });

  it('when Postgres is killed by PID, then it comes back on its port with the same data directory', async () => {
    const before = killByPid('postgres');
    const after = await backHealthy('postgres', before.pid);
    expect(after).to.include({ port: before.port, restarts: 1 });
    const na = s().topology.shards.find((sh) => sh.id === 'na')!;
    const client = new pg.Client({ connectionString: na.postgres });
    await client.connect();
    try {
      // Applied by the first start only: its presence means the same cluster came back.
      const r = await client.query<{ n: string }>('SELECT count(*) AS n FROM schema_migrations');
      expect(Number(r.rows[0]!.n)).to.be.greaterThan(0);
    } finally {
      await client.end();
    }
  });

  it('when a gateway and a replica are killed by PID, then each comes back healthy on its port with restarts = 1', async () => {
    const gateway = killByPid('api-gateway-1');
    const replica = killByPid('leaderboard-service-1');
    const [g, r] = await Promise.all([backHealthy('api-gateway-1', gateway.pid), backHealthy('leaderboard-service-1', replica.pid)]);

    expect(g).to.include({ port: gateway.port, restarts: 1 });
    expect(r).to.include({ port: replica.port, restarts: 1 });
    expect(logText()).to.match(/✖ api-gateway-1 \(port \d+\) exited unexpectedly with signal SIGKILL/);
    expect(logText()).to.match(/✖ leaderboard-service-1 \(port \d+\) exited unexpectedly with signal SIGKILL/);
    expect((await call(`${g.url}/health`)).status).to.equal(200);
    expect((await call(`${r.url}/health`)).status).to.equal(200);
  });

  it('when nginx is killed by PID, then its orphaned worker is cleared away and nginx serves again on its port', async () => {
    const before = s().component('nginx');
    const workers = childPids(before.pid!);
    expect(workers, 'nginx worker processes').not.to.deep.equal([]);
    killByPid('nginx');
    const after = await backHealthy('nginx', before.pid);

    expect(after).to.include({ port: before.port, restarts: 1 });
    expect(workers.filter((w) => pidAlive(w)), 'workers of the killed master').to.deep.equal([]);
    expect((await call(`${s().url}/health`)).status).to.equal(200);
  });

  it('when a component always crashes, then it is left down after its restarts and reported loudly', async () => {
    const worker = await eventually(
      async () => {
        const c = s().component('worker-service-1');
        return c.status === 'failed' ? c : undefined;
      },
      30_000,
      'worker-service-1 given up',
    );
    expect(worker).to.include({ restarts: RESTART.maxRestarts, pid: undefined });
    expect(worker.detail).to.match(/left down/);
    expect(lines.filter((l) => l.includes('↻ restarting worker-service-1'))).to.have.length(RESTART.maxRestarts);
    expect(logText()).to.match(/✖✖ worker-service-1 .* LEFT DOWN/);
    expect(logText(), 'the worker log tail, with its reason').to.include('BATCH_SIZE');

    // Given up means given up: nothing more happens to it, however long we wait.
    await sleep(RESTART.maxBackoffMs * 2);
    expect(s().component('worker-service-1')).to.include({ status: 'failed', restarts: RESTART.maxRestarts });
  });

  it('when a component is killed through the stack API, then it is not restarted', async () => {
    await s().kill('api-gateway-2');
    await sleep(RESTART.maxBackoffMs * 2);
    expect(s().component('api-gateway-2')).to.include({ status: 'exited', restarts: 0, pid: undefined });
    expect(logText()).not.to.match(/api-gateway-2 \(port \d+\) exited unexpectedly/);
    expect(logText()).not.to.include('restarting api-gateway-2');
  });

  it('when npm run status runs against the data directory, then it lists every component with its pid, liveness, status and restarts, and fails because some are down', async () => {
    const text = await runStatus(['--data-dir', dataDir]);
    expect(text.code, text.stderr).to.equal(1);
    const rows = new Map(
      text.stdout
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .map((cells) => [cells[0], cells] as const),
    );
    expect(rows.get('COMPONENT')).to.deep.equal(['COMPONENT', 'KIND', 'PORT', 'PID', 'ALIVE', 'STATUS', 'RESTARTS', 'ROLE']);
    const redis = s().component('redis-na');
    const b = s().component('redis-na-b');
    // After the two failovers above (redis-na killed, redis-na-b frozen and killed as hung): redis-na primary again, redis-na-b its replica.
    expect(rows.get('redis-na')).to.deep.equal(['redis-na', 'redis', String(redis.port), String(redis.pid), 'yes', 'healthy', '1', 'primary']);
    expect(rows.get('redis-na-b')).to.deep.equal(['redis-na-b', 'redis', String(b.port), String(b.pid), 'yes', 'healthy', '1', `replica-of:${redis.port}`]);
    expect(rows.get('sentinel-1')?.slice(0, 2)).to.deep.equal(['sentinel-1', 'sentinel']);
    expect(rows.get('worker-service-1')).to.deep.equal(['worker-service-1', 'worker', String(s().component('worker-service-1').port), '-', 'no', 'failed', '2', '-']);
    expect(rows.get('api-gateway-2')?.slice(3)).to.deep.equal(['-', 'no', 'exited', '0', '-']);
    expect(text.stdout).to.match(/not healthy: worker-service-1, api-gateway-2/);

    const json = await runStatus(['--json'], { STACK_DATA_DIR: dataDir });
    expect(json.code, json.stderr).to.equal(1);
    const report = JSON.parse(json.stdout) as { running: boolean; down: string[]; components: Array<Record<string, unknown>> };
    expect(report.running).to.equal(true);
    expect(report.down).to.deep.equal(['worker-service-1', 'api-gateway-2']);
    expect(report.components.map((c) => c.name)).to.deep.equal(s().components.map((c) => c.name));
    expect(report.components.find((c) => c.name === 'redis-na-b')).to.deep.include({ role: { role: 'replica', masterPort: redis.port, linkUp: true } });
    expect(report.components.find((c) => c.name === 'leaderboard-service-1')).to.deep.include({
      kind: 'service',
      pid: s().component('leaderboard-service-1').pid,
      alive: true,
      status: 'healthy',
      restarts: 1,
    });
  });

  it('when the stack stops while a restart is pending, then the restart is cancelled and nothing is left running', async () => {
    const replica = killByPid('leaderboard-service-2');
    // Wait (finely: the backoff is short) until the stack has seen the death and scheduled the restart.
    const deadline = Date.now() + 10_000;
    while (s().component('leaderboard-service-2').status === 'healthy' && Date.now() < deadline) await sleep(10);
    const restarted = s().component('leaderboard-service-2').pid;
    if (restarted) pids.add(restarted);
    expect(s().component('leaderboard-service-2').status).to.be.oneOf(['restarting', 'starting']);

    await s().stop();
    for (const c of s().components) if (c.pid) pids.add(c.pid);
    await sleep(RESTART.maxBackoffMs * 2);

    expect(s().components.filter((c) => c.pid !== undefined), 'components still running').to.deep.equal([]);
    expect([...pids].filter((p) => pidAlive(p)), 'processes left behind').to.deep.equal([]);
    expect(await listening(replica.port!), 'something listens on the replica port').to.equal(false);
    expect(logText()).not.to.include('leaderboard-service-2 healthy again');
    expect(readStackFile(dataDir)).to.equal(undefined);

    const status = await runStatus(['--data-dir', dataDir]);
    expect(status.code, status.stdout).to.equal(3);
    expect(status.stdout).to.include('no stack is running');
  });
});
