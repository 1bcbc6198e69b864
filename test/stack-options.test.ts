/** `npm start` options: flags over environment over defaults, and what they expand to. */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { DEFAULT_TOPOLOGY } from '@lb/common/platform';
import {
  DEFAULT_RESTART_POLICY,
  DEFAULT_STACK_PORTS,
  fixedPorts,
  localTopology,
  parseCli,
  resolveStackOptions,
  RestartBudget,
  workerShardAssignment,
  type RestartPolicy,
} from '../scripts/stack/options.js';
import { assertNotRunning, liveProcesses, readStackFile, resolveJwtSecret, writeStackFile } from '../scripts/stack/state.js';

describe('stack options', () => {
  it('when nothing is given, then the default topology and ports are used', () => {
    const o = resolveStackOptions({});
    expect(o).to.include({ replicas: 3, redisReplicas: true, gateways: 3, workers: 1, strict: true, echo: false, code: 'dist', metrics: true, scrapeIntervalSeconds: 5 });
    expect(o.restart).to.deep.equal({ maxRestarts: 5, windowMs: 60_000, backoffMs: 500, maxBackoffMs: 5_000 });
    expect(o.ports).to.deep.equal(DEFAULT_STACK_PORTS);
    expect(localTopology(o.ports.redis, o.ports.postgres)).to.deep.equal(DEFAULT_TOPOLOGY);
    expect(fixedPorts(o).map((p) => `${p.name}:${p.port}`)).to.deep.equal([
      'redis-na:6391', 'redis-eu:6392', 'redis-asia:6393',
      // Each shard's replica, then the Sentinels.
      'redis-na-b:6401', 'redis-eu-b:6402', 'redis-asia-b:6403',
      'sentinel-1:26391', 'sentinel-2:26392', 'sentinel-3:26393',
      'postgres:5442',
      'leaderboard-service-1:5001', 'leaderboard-service-2:5002', 'leaderboard-service-3:5003',
      'worker-service-1:5101',
      'api-gateway-1:4000', 'api-gateway-2:4001', 'api-gateway-3:4002',
      'nginx:8080',
      // nginx's internal live server (nchan's publisher), with or without metrics.
      'nginx live:8091',
      // Metrics: each Node service's /metrics, then nginx's stub_status, the exporters and Prometheus.
      'leaderboard-service-1 metrics:9101', 'leaderboard-service-2 metrics:9102', 'leaderboard-service-3 metrics:9103',
      'worker-service-1 metrics:9104',
      'api-gateway-1 metrics:9105', 'api-gateway-2 metrics:9106', 'api-gateway-3 metrics:9107',
      'nginx stub_status:8090',
      'redis-exporter-na:9121', 'redis-exporter-eu:9122', 'redis-exporter-asia:9123',
      'postgres-exporter:9187', 'nginx-exporter:9113', 'prometheus:9090',
    ]);
  });

  it('when npm start gets --no-replicas or REDIS_REPLICAS=0, then each shard is one Redis and there are no Sentinels; otherwise the replica and Sentinel ports are set by flags over environment', () => {
    for (const [argv, env] of [[['--no-replicas'], {}], [[], { REDIS_REPLICAS: '0' }]] as const) {
      const cli = parseCli([...argv], { ...env });
      expect(cli.stack.redisReplicas).to.equal(false);
      // --replicas is still the leaderboard-service replicas.
      expect(parseCli([...argv, '--replicas', '2'], { ...env }).stack.replicas).to.equal(2);
      const o = resolveStackOptions(cli.stack);
      expect(o.redisReplicas).to.equal(false);
      expect(fixedPorts(o).filter((p) => /^redis-(na|eu|asia)(-b)?$|^sentinel-/.test(p.name)).map((p) => `${p.name}:${p.port}`)).to.deep.equal([
        'redis-na:6391', 'redis-eu:6392', 'redis-asia:6393',
      ]);
      // Without Sentinels their ports are free for something else.
      expect(() => parseCli([...argv, '--nginx-port', '26391'], { ...env })).not.to.throw();
    }
    expect(parseCli([], {}).stack.redisReplicas).to.equal(undefined); // startStack's default: replicas
    expect(parseCli([], { REDIS_REPLICAS: '1' }).stack.redisReplicas).to.equal(undefined);
    expect(() => parseCli([], { REDIS_REPLICAS: '2' })).to.throw(/REDIS_REPLICAS must be 0 .* or 1/);
    const cli = parseCli(['--redis-replica-ports', '7401,7402,7403', '--sentinel-ports=27391,27392,27393'], {
      REDIS_REPLICA_PORTS: '1,2,3',
      SENTINEL_PORTS: '1,2,3',
    });
    expect(cli.stack.ports).to.deep.include({ redisReplica: [7401, 7402, 7403], sentinels: [27391, 27392, 27393] });
    expect(parseCli([], { SENTINEL_PORTS: '36391,36392,36393' }).stack.ports).to.deep.include({ sentinels: [36391, 36392, 36393] });
    const ports = new Map(fixedPorts(resolveStackOptions(cli.stack)).map((p) => [p.name, p.port]));
    expect(ports.get('redis-asia-b')).to.equal(7403);
    expect(ports.get('sentinel-2')).to.equal(27392);
    expect(() => parseCli(['--sentinel-ports', '1,2'], {})).to.throw(/ports.sentinels must list 3/);
    expect(() => parseCli(['--redis-replica-ports', '6391,6402,6403'], {})).to.throw(/redis-na and redis-na-b would both listen on port 6391/);
    expect(() => parseCli(['--nginx-port', '26391'], {})).to.throw(/sentinel-1 and nginx would both listen on port 26391/);
  });

  it('when the topology is built with Sentinel ports, then every shard is its Sentinel master lb-<shard> behind them, with the same Postgres', () => {
    const t = localTopology([1, 2, 3], 5442, [26391, 26392, 26393]);
    const sentinels = [26391, 26392, 26393].map((port) => ({ host: '127.0.0.1', port }));
    expect(t.shards.map((s) => s.redis)).to.deep.equal(DEFAULT_TOPOLOGY.shards.map((s) => ({ kind: 'sentinel', master: `lb-${s.id}`, sentinels })));
    expect(t.shards.map((s) => s.postgres)).to.deep.equal(DEFAULT_TOPOLOGY.shards.map((s) => s.postgres));
    expect(t.regions).to.deep.equal(DEFAULT_TOPOLOGY.regions);
    expect(localTopology([1, 2, 3], 5442).shards.map((s) => s.redis)).to.deep.equal([1, 2, 3].map((p) => ({ kind: 'server', url: `redis://127.0.0.1:${p}` })));
  });

  it('when npm start gets --no-metrics or STACK_METRICS=off, then no metrics port is used; otherwise the metrics flags set them', () => {
    for (const [argv, env] of [[['--no-metrics'], {}], [[], { STACK_METRICS: 'off' }]] as const) {
      const cli = parseCli([...argv], { ...env });
      expect(cli.stack.metrics).to.equal(false);
      const o = resolveStackOptions(cli.stack);
      expect(o.metrics).to.equal(false);
      expect(fixedPorts(o).map((p) => p.name)).to.deep.equal(fixedPorts(resolveStackOptions({ metrics: false })).map((p) => p.name));
      expect(fixedPorts(o).filter((p) => / metrics$|exporter|prometheus|stub_status/.test(p.name))).to.deep.equal([]);
    }
    expect(parseCli([], {}).stack.metrics).to.equal(undefined); // startStack's default: on
    // Without metrics, Prometheus's port is free for something else.
    expect(() => parseCli(['--no-metrics', '--nginx-port', '9090'], {})).not.to.throw();
    const cli = parseCli(['--metrics-base-port', '19101', '--scrape-interval', '1'], { PROMETHEUS_PORT: '19090', METRICS_BASE_PORT: '1' });
    expect(cli.stack).to.include({ scrapeIntervalSeconds: 1 });
    expect(cli.stack.ports).to.deep.include({ metricsBase: 19101, prometheus: 19090 });
    const ports = new Map(fixedPorts(resolveStackOptions(cli.stack)).map((p) => [p.name, p.port]));
    expect(ports.get('leaderboard-service-1 metrics')).to.equal(19101);
    expect(ports.get('api-gateway-3 metrics')).to.equal(19107);
    expect(ports.get('prometheus')).to.equal(19090);
    expect(() => parseCli(['--scrape-interval', '0'], {})).to.throw(/scrapeIntervalSeconds must be an integer in 1\.\.300/);
    expect(() => parseCli(['--nginx-port', '9090'], {})).to.throw(/nginx and prometheus would both listen on port 9090/);
    expect(() => parseCli(['--replicas', '12'], {})).to.throw(/nginx-exporter would both listen on port 9113/);
    expect(() => parseCli([], { STACK_METRICS: 'maybe' })).to.throw(/STACK_METRICS must be on or off/);
  });

  it('when flags and environment both set a value, then the flag wins', () => {
    const cli = parseCli(['--replicas', '2', '--nginx-port=9080', '--quiet'], {
      REPLICAS: '5',
      GATEWAYS: '4',
      WORKERS: '2',
      NGINX_PORT: '1234',
      SERVICE_BASE_PORT: '7001',
      GATEWAY_BASE_PORT: '7101',
      JWT_SECRET: 'x'.repeat(40),
    });
    expect(cli.quiet).to.equal(true);
    expect(cli.stack).to.include({ replicas: 2, gateways: 4, workers: 2, echo: false, strict: false, jwtSecret: 'x'.repeat(40) });
    expect(cli.stack.ports).to.deep.include({ nginx: 9080, serviceBase: 7001, gatewayBase: 7101 });
  });

  it('when a value is malformed or ports collide, then parsing fails naming it', () => {
    expect(() => parseCli(['--replicas', 'three'], {})).to.throw(/--replicas/);
    expect(() => parseCli(['--gateways', '0'], {})).to.throw(/gateways/);
    expect(() => parseCli(['--no-such-flag'], {})).to.throw(/no-such-flag/);
    expect(() => parseCli(['--nginx-port', '5002'], {})).to.throw(/leaderboard-service-2 and nginx would both listen on port 5002/);
    expect(() => parseCli([], { REDIS_PORTS: '1,2' })).to.throw(/ports.redis must list 3/);
  });

  it('when npm start gets --code or STACK_CODE, then the services run that code; anything but dist or source fails naming it', () => {
    expect(parseCli([], {}).stack.code).to.equal(undefined); // startStack's default: dist
    expect(parseCli(['--code', 'source'], { STACK_CODE: 'dist' }).stack.code).to.equal('source');
    expect(parseCli([], { STACK_CODE: 'source' }).stack.code).to.equal('source');
    expect(resolveStackOptions({ code: 'source' }).code).to.equal('source');
    expect(() => parseCli(['--code', 'ts'], {})).to.throw(/--code \/ STACK_CODE must be dist or source, got "ts"/);
  });

  it('when ports are ephemeral, then nothing is fixed', () => {
    expect(fixedPorts(resolveStackOptions({ ports: 'ephemeral' }))).to.deep.equal([]);
  });

  it('when there are several workers, then every shard has a consumer', () => {
    const ids = ['na', 'eu', 'asia'];
    expect(workerShardAssignment(1, ids)).to.deep.equal([ids]);
    expect(workerShardAssignment(2, ids)).to.deep.equal([['na', 'asia'], ['eu']]);
    expect(workerShardAssignment(3, ids)).to.deep.equal([['na'], ['eu'], ['asia']]);
    expect(workerShardAssignment(4, ids)).to.deep.equal([['na'], ['eu'], ['asia'], ['na']]);
    expect(workerShardAssignment(0, ids)).to.deep.equal([]);
  });

  describe('restarts', () => {
    /** A budget on a clock the test moves by hand. */
    function budgetAt(policy: RestartPolicy = DEFAULT_RESTART_POLICY): { budget: RestartBudget; clock: { now: number } } {
      const clock = { now: 1_000_000 };
      return { budget: new RestartBudget(policy, () => clock.now), clock };
    }

    it('when a component keeps crashing, then each delay doubles up to the cap and the crash after the 5th restart in the window is given up', () => {
      const { budget, clock } = budgetAt();
      const delays: Array<number | undefined> = [];
      for (let i = 0; i < 7; i++) {
        delays.push(budget.next());
        clock.now += 1_000;
      }
      expect(delays).to.deep.equal([500, 1_000, 2_000, 4_000, 5_000, undefined, undefined]);
      expect(budget.inWindow()).to.equal(5);
    });

    it('when the window moves past old restarts, then restarts are allowed again and the delay shrinks with them', () => {
      const { budget, clock } = budgetAt();
      const start = clock.now;
      for (let i = 0; i < 5; i++) {
        budget.next();
        clock.now += 1_000; // restarts at start, +1 s … +4 s
      }
      clock.now = start + 59_999;
      expect(budget.next(), 'the first restart is still inside the window').to.equal(undefined);
      clock.now = start + 60_000;
      expect(budget.next(), 'the first restart left the window; four remain').to.equal(5_000);
      clock.now = start + 10 * 60_000;
      expect(budget.inWindow()).to.equal(0);
      expect(budget.next(), 'after a quiet window it starts over').to.equal(500);
    });

    it('when the budget is reset or the policy allows no restart, then the count starts over or nothing is granted', () => {
      const { budget } = budgetAt({ maxRestarts: 2, windowMs: 60_000, backoffMs: 100, maxBackoffMs: 150 });
      expect([budget.next(), budget.next(), budget.next()]).to.deep.equal([100, 150, undefined]);
      budget.reset();
      expect(budget.next()).to.equal(100);
      expect(budgetAt({ ...DEFAULT_RESTART_POLICY, maxRestarts: 0 }).budget.next()).to.equal(undefined);
    });

    it('when restart options are given, then missing keys take the defaults and bad ones fail naming the key', () => {
      expect(resolveStackOptions({ restart: false }).restart).to.equal(false);
      expect(resolveStackOptions({ restart: { maxRestarts: 2, backoffMs: 100 } }).restart).to.deep.equal({
        maxRestarts: 2, windowMs: 60_000, backoffMs: 100, maxBackoffMs: 5_000,
      });
      expect(resolveStackOptions({ restart: { backoffMs: 8_000 } }).restart).to.include({ backoffMs: 8_000, maxBackoffMs: 8_000 });
      expect(() => resolveStackOptions({ restart: { maxRestarts: -1 } })).to.throw(/restart\.maxRestarts/);
      expect(() => resolveStackOptions({ restart: { windowMs: 0 } })).to.throw(/restart\.windowMs/);
      expect(() => resolveStackOptions({ restart: { backoffMs: 1_000, maxBackoffMs: 500 } })).to.throw(/restart\.maxBackoffMs/);
    });

    it('when npm start gets --no-restart or STACK_RESTART=off, then restarts are off; otherwise they are on', () => {
      expect(parseCli(['--no-restart'], {}).stack.restart).to.equal(false);
      expect(parseCli([], { STACK_RESTART: 'off' }).stack.restart).to.equal(false);
      expect(parseCli(['--no-restart'], { STACK_RESTART: 'on' }).stack.restart).to.equal(false);
      expect(parseCli([], { STACK_RESTART: 'on' }).stack.restart).to.equal(undefined);
      expect(resolveStackOptions(parseCli([], {}).stack).restart).to.deep.equal(DEFAULT_RESTART_POLICY);
      expect(() => parseCli([], { STACK_RESTART: 'sometimes' })).to.throw(/STACK_RESTART must be on or off/);
    });
  });

  describe('state', () => {
    let dir: string;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'lb-stack-state-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('when no secret is given, then one is generated once, kept private and reused', () => {
      const first = resolveJwtSecret(dir, undefined);
      expect(first.length).to.be.at.least(32);
      expect(statSync(join(dir, 'jwt-secret')).mode & 0o777).to.equal(0o600);
      expect(resolveJwtSecret(dir, undefined)).to.equal(first);
      expect(resolveJwtSecret(dir, 'y'.repeat(32))).to.equal('y'.repeat(32));
      expect(readFileSync(join(dir, 'jwt-secret'), 'utf8').trim()).to.equal(first);
      expect(() => resolveJwtSecret(dir, 'short')).to.throw(/at least 32/);
    });

    it('when stack.json names a live supervisor, then another start is refused; a dead one is ignored', () => {
      writeStackFile(dir, { supervisorPid: process.ppid, startedAt: new Date().toISOString(), components: [] });
      expect(() => assertNotRunning(dir)).to.throw(/already running/);
      // A PID that cannot exist (above pid_max) stands for a supervisor long gone.
      writeFileSync(join(dir, 'stack.json'), JSON.stringify({ supervisorPid: 2 ** 30, startedAt: '', components: [] }));
      expect(() => assertNotRunning(dir)).not.to.throw();
      writeStackFile(dir, {
        supervisorPid: 2 ** 30,
        startedAt: '',
        components: [{ name: 'redis-na', kind: 'redis', pid: process.ppid }],
      });
      expect(() => assertNotRunning(dir)).to.throw(/still running.*redis-na/);
    });

    it('when stack.json lists components without a process, then they are kept with their status but only live ones count as processes', () => {
      writeStackFile(dir, {
        supervisorPid: 2 ** 30,
        startedAt: '',
        components: [
          { name: 'redis-na', kind: 'redis', pid: process.ppid, port: 6391, status: 'healthy', restarts: 1 },
          { name: 'worker-service-1', kind: 'worker', port: 5101, status: 'failed', restarts: 5 },
          { name: 'nginx', kind: 'nginx', pid: 2 ** 30, status: 'healthy', restarts: 0 },
        ],
      });
      const state = readStackFile(dir)!;
      expect(state.components.map((c) => `${c.name}:${c.status}:${c.restarts}`)).to.deep.equal([
        'redis-na:healthy:1', 'worker-service-1:failed:5', 'nginx:healthy:0',
      ]);
      expect(liveProcesses(state).map((c) => c.name)).to.deep.equal(['redis-na']);
      expect(() => assertNotRunning(dir)).to.throw(/still running.*redis-na pid/);
    });
  });
});
