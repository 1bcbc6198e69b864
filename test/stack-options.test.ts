/** `npm start` options: flags over environment over defaults, and what they expand to. */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { DEFAULT_TOPOLOGY } from '@lb/common';
import {
  DEFAULT_STACK_PORTS,
  fixedPorts,
  localTopology,
  parseCli,
  resolveStackOptions,
  workerShardAssignment,
} from '../scripts/stack/options.js';
import { assertNotRunning, resolveJwtSecret, writeStackFile } from '../scripts/stack/state.js';

describe('stack options', () => {
  it('when nothing is given, then the default topology and ports are used', () => {
    const o = resolveStackOptions({});
    expect(o).to.include({ replicas: 3, gateways: 3, workers: 1, strict: true, echo: false });
    expect(o.ports).to.deep.equal(DEFAULT_STACK_PORTS);
    expect(localTopology(o.ports.redis, o.ports.postgres)).to.deep.equal(DEFAULT_TOPOLOGY);
    expect(fixedPorts(o).map((p) => `${p.name}:${p.port}`)).to.deep.equal([
      'redis-na:6391', 'redis-eu:6392', 'redis-asia:6393', 'postgres:5442',
      'leaderboard-service-1:5001', 'leaderboard-service-2:5002', 'leaderboard-service-3:5003',
      'worker-service-1:5101',
      'api-gateway-1:4000', 'api-gateway-2:4001', 'api-gateway-3:4002',
      'nginx:8080',
    ]);
  });

  it('when flags and environment both set a value, then the flag wins', () => {
    const cli = parseCli(['--replicas', '2', '--nginx-port=9090', '--quiet'], {
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
    expect(cli.stack.ports).to.deep.include({ nginx: 9090, serviceBase: 7001, gatewayBase: 7101 });
  });

  it('when a value is malformed or ports collide, then parsing fails naming it', () => {
    expect(() => parseCli(['--replicas', 'three'], {})).to.throw(/--replicas/);
    expect(() => parseCli(['--gateways', '0'], {})).to.throw(/gateways/);
    expect(() => parseCli(['--no-such-flag'], {})).to.throw(/no-such-flag/);
    expect(() => parseCli(['--nginx-port', '5002'], {})).to.throw(/leaderboard-service-2 and nginx would both listen on port 5002/);
    expect(() => parseCli([], { REDIS_PORTS: '1,2' })).to.throw(/ports.redis must list 3/);
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
  });
});
