/**
 * One shard as `npm start` runs it with replicas (the default): a primary, a
 * replica and three Sentinels, started through @lb/devtools/infra as the
 * stack starts them (not the whole stack), with real processes. Shows the
 * replica in sync, a SIGKILLed primary replaced by Sentinel, and the
 * restart rule (devtools/src/infra/redis-ha.ts): a restarted node rejoins as
 * the replica of the promoted one with the data written before the kill, a
 * node restarted before the failover waits instead of coming back as a
 * stale primary, and one with no replica left comes back as primary from its
 * append-only file after the wait.
 *
 * Every wait is bounded (≤ 30 s a step) and nothing asserts on timings.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import {
  findBinary,
  redisCommand,
  redisRole,
  sentinelPrimary,
  startHaRedisNode,
  startSentinel,
  waitForSentinels,
  type HaRedisStart,
  type RedisProcess,
  type RedisRole,
  type SentinelProcess,
  type StartHaRedisOptions,
} from '@lb/devtools/infra';
import { eventually } from './support/e2e.js';

const MASTER = 'lb-test';
const STEP_MS = 30_000;

describe('a Redis shard with a replica and Sentinels (end to end)', function () {
  this.timeout(4 * STEP_MS);
  let dir: string;
  const nodes: RedisProcess[] = [];
  const sentinels: SentinelProcess[] = [];
  let a: RedisProcess;
  let b: RedisProcess;
  let sentinelPorts: number[];
  const lines: string[] = [];

  /** Starts node `name` (`a` or `b`) on `port` by the restart rule, as the stack's supervisor would. */
  async function node(name: string, o: Partial<StartHaRedisOptions> & { port?: number }): Promise<HaRedisStart> {
    const started = await startHaRedisNode({
      dir: join(dir, name),
      name: `redis-${name}`,
      appendOnly: true,
      minReplicasToWrite: 1,
      minReplicasMaxLagSeconds: 2,
      master: MASTER,
      sentinelPorts,
      log: (l) => lines.push(l),
      ...o,
    });
    nodes.push(started.proc);
    return started;
  }

  /** Waits until the Sentinels name the node on `port` primary and it says it is one. */
  async function promoted(port: number): Promise<void> {
    await eventually(
      async () => ((await sentinelPrimary(sentinelPorts, MASTER))?.port === port && (await redisRole(port).catch(() => undefined))?.role === 'master' ? true : undefined),
      STEP_MS,
      `the Sentinels promote 127.0.0.1:${port}`,
    );
  }

  /** Waits until the node on `port` is a replica of `primary` with its link up. */
  async function replicaOf(port: number, primary: number): Promise<RedisRole> {
    return eventually(
      async () => {
        const r = await redisRole(port).catch(() => undefined);
        return r?.role === 'slave' && r.master?.port === primary && r.linkUp ? r : undefined;
      },
      STEP_MS,
      `127.0.0.1:${port} in sync with 127.0.0.1:${primary}`,
    );
  }

  /** Writes on the primary and waits until the replica has it (WAIT), as the services' writes do. */
  async function write(primary: number, key: string, value: string): Promise<void> {
    expect(await redisCommand(primary, ['SET', key, value], 2000)).to.equal('OK');
    expect(await redisCommand(primary, ['WAIT', '1', '2000'], 3000), 'replicas that acknowledged the write').to.equal(1);
  }

  before(async function () {
    const missing = (['redis-server', 'redis-sentinel'] as const).filter((n) => !findBinary(n));
    if (missing.length > 0) {
      console.log(`      (skipped: ${missing.join(', ')} not installed; npm test installs them via scripts/bootstrap.mjs)`);
      this.skip();
    }
    dir = mkdtempSync(join(tmpdir(), 'lb-redis-ha-'));
    sentinelPorts = [];
    a = (await node('a', { initial: 'primary' })).proc;
    b = (await node('b', { initial: { host: '127.0.0.1', port: a.port } })).proc;
    for (let i = 1; i <= 3; i++) {
      const s = await startSentinel({ dir: join(dir, `sentinel-${i}`), name: `sentinel-${i}`, masters: [{ name: MASTER, host: '127.0.0.1', port: a.port }] });
      sentinels.push(s);
      sentinelPorts.push(s.port);
    }
    await waitForSentinels(sentinelPorts, [MASTER], { replicas: 1, timeoutMs: STEP_MS });
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(lines.map((l) => `      | ${l}`).join('\n'));
  });

  after(async () => {
    for (const s of sentinels) await s.stop();
    for (const n of nodes) await n.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('when the shard is up, then the replica is in sync with the primary and has its writes, and the Sentinels name the primary', async () => {
    expect(b.replicaOf).to.deep.equal({ host: '127.0.0.1', port: a.port });
    expect(b.linkUp).to.equal(true);
    await replicaOf(b.port, a.port);
    await write(a.port, 'ha:before', 'one');
    expect(await redisCommand(b.port, ['GET', 'ha:before'], 2000)).to.equal('one');
    expect(await sentinelPrimary(sentinelPorts, MASTER)).to.deep.equal({ host: '127.0.0.1', port: a.port });
    // The write-safety settings the stack gives both nodes.
    for (const p of [a.port, b.port]) {
      expect(await redisCommand(p, ['CONFIG', 'GET', 'min-replicas-to-write'], 2000)).to.deep.equal(['min-replicas-to-write', '1']);
      expect(await redisCommand(p, ['CONFIG', 'GET', 'min-replicas-max-lag'], 2000)).to.deep.equal(['min-replicas-max-lag', '2']);
    }
  });

  it('when the primary is SIGKILLed, then Sentinel promotes the replica, and the old primary restarted by the restart rule rejoins as its replica with the data written before the kill', async () => {
    await write(a.port, 'ha:acked', 'before-the-kill');
    await a.kill();
    await promoted(b.port);

    const again = await node('a', { port: a.port, fallback: 'primary' });
    a = again.proc;
    expect(again.role).to.equal('replica');
    expect(again.replicaOf?.port).to.equal(b.port);
    expect(again.reason).to.match(/name 127\.0\.0\.1:\d+ primary of lb-test: rejoining as its replica|promoted 127\.0\.0\.1:\d+/);
    const role = await replicaOf(a.port, b.port);
    expect(role).to.include({ role: 'slave', linkUp: true });
    expect(await redisCommand(a.port, ['GET', 'ha:acked'], 2000)).to.equal('before-the-kill');
    expect(await redisCommand(a.port, ['GET', 'ha:before'], 2000)).to.equal('one');
    // And it follows the new primary from now on.
    await write(b.port, 'ha:after', 'two');
    expect(await redisCommand(a.port, ['GET', 'ha:after'], 2000)).to.equal('two');
  });

  it('when the primary is restarted before the Sentinels failed over, then it waits for the promotion and comes back as a replica, not as a stale primary', async () => {
    await write(b.port, 'ha:second', 'acked-by-b');
    await b.kill();
    // At once: the Sentinels cannot have noticed yet, they still name b.
    expect((await sentinelPrimary(sentinelPorts, MASTER))?.port).to.equal(b.port);
    const again = await node('b', { port: b.port, fallback: 'primary' });
    b = again.proc;

    expect(again.role, again.reason).to.equal('replica');
    expect(again.replicaOf?.port).to.equal(a.port);
    expect(lines.some((l) => /redis-b: the Sentinels still name this node \(127\.0\.0\.1:\d+\) primary of lb-test: waiting/.test(l)), 'the wait is logged').to.equal(true);
    expect(again.reason).to.match(/the Sentinels promoted 127\.0\.0\.1:\d+ after \d+ ms/);
    expect((await sentinelPrimary(sentinelPorts, MASTER))?.port).to.equal(a.port);
    await replicaOf(b.port, a.port);
    expect(await redisCommand(a.port, ['GET', 'ha:second'], 2000)).to.equal('acked-by-b');
    expect(await redisCommand(b.port, ['GET', 'ha:second'], 2000)).to.equal('acked-by-b');
  });

  it('when both nodes are down and the primary comes back, then after waiting for a promotion that cannot happen it starts as primary from its append-only file, and the replica rejoins it', async () => {
    await write(a.port, 'ha:third', 'acked-by-a');
    await b.kill();
    await a.kill();
    const first = await node('a', { port: a.port, fallback: 'primary', promotionWaitMs: 3000 });
    a = first.proc;
    expect(first.role).to.equal('primary');
    expect(first.reason).to.match(/NO replica of lb-test was promoted within 3000 ms/);
    expect((await redisRole(a.port)).role).to.equal('master');
    expect(await redisCommand(a.port, ['GET', 'ha:third'], 2000)).to.equal('acked-by-a');

    const second = await node('b', { port: b.port, fallback: { host: '127.0.0.1', port: a.port } });
    b = second.proc;
    expect(second.role).to.equal('replica');
    expect(second.replicaOf?.port).to.equal(a.port);
    await replicaOf(b.port, a.port);
    expect(await redisCommand(b.port, ['GET', 'ha:third'], 2000)).to.equal('acked-by-a');
  });
});
