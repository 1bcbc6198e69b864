/**
 * A shard connection behind Sentinel, against real processes (a primary, a
 * replica and one Sentinel, through @lb/devtools/infra): what a write
 * answers in each state of the replica. Writes are answered once the
 * replica has them; a replica that does not confirm leaves them applied
 * and answered in doubt, never "not applied"; a primary that has lost its
 * replica refuses them before applying them; reads never wait behind a
 * write's WAIT; and a script the promoted primary does not know yet is sent
 * again in full, under the next WAIT.
 *
 * Orders of events are asserted, never durations.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { StoreUnavailable, type ShardDef } from '@lb/common/contracts';
import { createLogger } from '@lb/common/platform';
import { findBinary, redisCommand, startRedis, startSentinel, type RedisProcess, type SentinelProcess } from '@lb/devtools/infra';
import { ShardConnection } from '../src/redis/connection.js';
import type { Script } from '../src/redis/scripts.js';

const MASTER = 'lb-test-writes';

function script(name: string, source: string): Script {
  return { name, source, sha: createHash('sha1').update(source).digest('hex') };
}
/** Adds 1 to a counter: a write that must apply once. */
const INCR = script('test-incr', "return redis.call('INCR', KEYS[1])");

/** Waits (polling every 50 ms, at most `timeoutMs`) until `fn` holds. */
async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('writes on a shard with a replica (Sentinel)', function () {
  this.timeout(120_000);
  let dir: string;
  let primary: RedisProcess;
  let replica: RedisProcess;
  let sentinel: SentinelProcess;
  let conn: ShardConnection;
  let frozen = false;

  const inSync = async (): Promise<boolean> => /master_link_status:up/.test(String(await redisCommand(replica.port, ['INFO', 'replication'], 1000)));
  const goodReplicas = async (): Promise<number> => Number(/min_slaves_good_slaves:(\d+)/.exec(String(await redisCommand(primary.port, ['INFO', 'replication'], 1000)))?.[1] ?? 0);
  const counter = async (key: string): Promise<number> => Number(await redisCommand(primary.port, ['GET', key], 1000));
  const freeze = (): void => {
    process.kill(replica.pid, 'SIGSTOP');
    frozen = true;
  };
  const thaw = (): void => {
    if (frozen) process.kill(replica.pid, 'SIGCONT');
    frozen = false;
  };

  before(async function () {
    if (!findBinary('redis-server') || !findBinary('redis-sentinel')) this.skip();
    dir = mkdtempSync(join(tmpdir(), 'lb-replicated-writes-'));
    const safety = { minReplicasToWrite: 1, minReplicasMaxLagSeconds: 2 };
    primary = await startRedis({ dir: join(dir, 'a'), name: 'redis-a', ...safety });
    replica = await startRedis({ dir: join(dir, 'b'), name: 'redis-b', replicaOf: { host: '127.0.0.1', port: primary.port }, ...safety });
    sentinel = await startSentinel({ dir: join(dir, 's'), name: 'sentinel', quorum: 1, masters: [{ name: MASTER, host: '127.0.0.1', port: primary.port }] });
    const shard: ShardDef = {
      id: 'ha',
      redis: { kind: 'sentinel', master: MASTER, sentinels: [{ host: '127.0.0.1', port: sentinel.port }] },
      postgres: 'postgres://unused@127.0.0.1:1/unused',
    };
    conn = new ShardConnection(shard, createLogger('test', 'silent'), 2000);
    expect(await conn.connect()).to.equal(true);
    expect(conn.replicated).to.equal(true);
    await until('the replica in sync and counted by the primary', async () => (await inSync()) && (await goodReplicas()) === 1);
  });

  afterEach(() => thaw());

  after(async () => {
    thaw();
    await conn?.close();
    for (const p of [sentinel, replica, primary]) await p?.stop().catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('when the replica is in sync, then every write of a burst is answered once the replica has it, each applied once', async () => {
    const answers = await Promise.all(Array.from({ length: 50 }, () => conn.runScript(INCR, ['burst'], [], true)));
    expect(answers.map(Number).sort((a, b) => a - b)).to.deep.equal(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(Number(await redisCommand(replica.port, ['GET', 'burst'], 1000))).to.equal(50);
  });

  it('when the replica hangs, then a write is applied on the primary and answered 503 in doubt, and a read sent after it is answered first', async () => {
    freeze();
    const order: string[] = [];
    const write = conn.runScript(INCR, ['doubt'], [], true).then(
      () => order.push('write ok'),
      (e: unknown) => {
        order.push('write failed');
        return e;
      },
    );
    // Sent once the write and its WAIT are on their way (the write waits for the replica up to 1 s), on the same shard: it must not queue behind that WAIT.
    await new Promise((r) => setTimeout(r, 100));
    expect(order).to.deep.equal([]);
    // Behind the WAIT, the read's answer would come in the same packet as the WAIT's, and the write would fail before the next turn of the event loop.
    const read = conn.call(() => conn.client.get('doubt')).then(() => {
      order.push('read');
      setImmediate(() => order.push('next turn'));
    });
    const [err] = await Promise.all([write, read]);
    expect(order).to.deep.equal(['read', 'next turn', 'write failed']);
    expect(err).to.be.instanceOf(StoreUnavailable);
    expect((err as StoreUnavailable).inDoubt, 'applied on the primary, not confirmed: in doubt').to.equal(true);
    expect(await counter('doubt'), 'the primary applied it').to.equal(1);
  });

  it('when the primary has had no replica for longer than min-replicas-max-lag, then a write is refused before it is applied (503, not in doubt)', async () => {
    freeze();
    await until('the primary counting no good replica', async () => (await goodReplicas()) === 0);
    const err = await conn.runScript(INCR, ['refused'], [], true).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(StoreUnavailable);
    expect((err as StoreUnavailable).inDoubt).to.equal(false);
    expect(String((err as StoreUnavailable).cause)).to.contain('NOREPLICAS');
    expect(await counter('refused'), 'nothing applied').to.equal(0);

    thaw();
    await until('the replica counted again', async () => (await goodReplicas()) === 1);
    expect(Number(await conn.runScript(INCR, ['refused'], [], true))).to.equal(1);
  });

  it('when the primary does not know the script (flushed, as on a promoted replica), then the write is sent in full and still waits for the replica', async () => {
    await redisCommand(primary.port, ['SCRIPT', 'FLUSH'], 1000);
    expect(Number(await conn.runScript(INCR, ['flushed'], [], true))).to.equal(1);
    expect(Number(await redisCommand(replica.port, ['GET', 'flushed'], 1000))).to.equal(1);
  });
});
