/**
 * A shard's Redis failing under load, through nginx, with real processes:
 * the stack as `npm start` runs it (each shard a primary and a replica,
 * three Sentinels), a mixed load of keyed writes and reads in NA, EU and
 * ASIA, and NA's Redis hurt in three ways, one test each, in order:
 *
 * 1. its primary killed with SIGKILL: Sentinel promotes the replica, the
 *    supervisor brings the old primary back as the new one's replica;
 * 2. its (new) primary frozen with SIGSTOP, continued after the failover: it
 *    rejoins as a replica of the promoted node;
 * 3. its replica killed: the primary refuses writes (min-replicas-to-write 1)
 *    until the replica is back, then takes them again.
 *
 * Meanwhile NA's requests succeed or get a clean 503 `unavailable` with
 * Retry-After (a client retries the same Idempotency-Key), and EU's and
 * ASIA's get no error at all. At the end every acknowledged write is in
 * Redis exactly once (each player's score and version count the keys that
 * were acknowledged, nothing lost, nothing applied twice), and NA's top
 * page, GLOBAL's and NA's live stream through nginx show exactly that. That
 * Postgres then equals Redis is the pending test at the end (see there).
 *
 * No timing assertions: the failover window is measured by `npm run bench`.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { topologyJson } from '@lb/common/platform';
import { SOURCE_NODE_ARGS } from '@lb/devtools/infra';
import { uniqueId } from '@lb/devtools/testing';
import { REPO_ROOT } from '../scripts/stack/paths.js';
import type { Stack } from '../scripts/stack/stack.js';
import { call, eventually, NoAnswer, post, StackStores, type Reply } from './support/e2e.js';
import { dataOf, ReconnectingSse } from './support/sse.js';
import { skipUnlessInstalled, startTestStack, type TestStack } from './support/test-stack.js';

const PASSWORD = 'correct horse battery';
const REGIONS = ['NA', 'EU', 'ASIA'] as const;
const PLAYERS_PER_REGION = 4;
/** How long each fault's load runs on after the hurt shard takes writes again. */
const AFTER_MS = 1500;
/** Bounds of every wait: a failover, a restart, a stream. */
const STEP_MS = 45_000;

interface Player {
  userId: string;
  region: (typeof REGIONS)[number];
  token: string;
  /** Writes acknowledged (200) so far: each with a key of its own. */
  acked: number;
  seq: number;
}

/** What went wrong in one region during a fault. */
interface Tally {
  ok: number;
  /** 503 unavailable with Retry-After. */
  unavailable: number;
  /** Anything else: must stay empty. */
  bad: string[];
}

describe('a Redis shard failing under load, through nginx (end to end)', function () {
  this.timeout(6 * STEP_MS);
  let ts: TestStack | undefined;
  let stores: StackStores | undefined;
  /** NA's live top, watched from before the first fault to after the last one. */
  let live: ReconnectingSse | undefined;
  const players: Player[] = [];
  const stackLog: string[] = [];
  const s = (): Stack => ts!.stack;
  const url = (path: string): string => `${s().url}${path}`;

  before(async function () {
    skipUnlessInstalled(this);
    this.timeout(180_000);
    ts = await startTestStack('lb-failover-', {
      env: { LOG_LEVEL: 'warn', USER_RATE_LIMIT_COUNT: '1000000', REGION_RATE_LIMIT_COUNT: '1000000' },
      envFor: { gateway: { UPSTREAM_COOLOFF_MS: '1000', PROBE_INTERVAL_MS: '200' } },
      log: (l) => stackLog.push(l),
    });
    stores = await StackStores.open(s().topology);
    for (const region of REGIONS) {
      for (let i = 0; i < PLAYERS_PER_REGION; i++) {
        const userId = uniqueId(`fo-${region.toLowerCase()}`);
        const r = await post(url('/auth/register'), { user_id: userId, name: `Failover ${region} ${i}`, region, password: PASSWORD });
        expect(r.status, JSON.stringify(r.body)).to.equal(201);
        players.push({ userId, region, token: r.body.token as string, acked: 0, seq: 0 });
      }
    }
    live = new ReconnectingSse(url(`/live?region=NA&limit=${PLAYERS_PER_REGION}`), 500);
    await live.until(() => live!.events.length > 0, STEP_MS, 'the first live top');
  });

  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return;
    console.log(stackLog.slice(-40).map((l) => `      | ${l}`).join('\n'));
    // The Redis and Sentinel logs, kept past the stack's removal: what happened, and in which order.
    const kept = mkdtempSync(join(tmpdir(), 'lb-failover-logs-'));
    cpSync(join(ts!.dataDir, 'logs'), kept, { recursive: true });
    console.log(`      logs kept in ${kept}`);
  });

  after(async function () {
    this.timeout(90_000);
    await live?.close();
    await stores?.close();
    await ts?.stop();
  });

  /** A 503 as the API promises it during a failover: the error shape, `unavailable`, a Retry-After. */
  function cleanUnavailable(r: Reply): boolean {
    return r.status === 503 && (r.body as { error?: string })?.error === 'unavailable' && Number(r.headers.get('retry-after')) >= 1;
  }

  /**
   * Runs the mixed load until `done()` turns true: one lane per player
   * writing `add 1` with a new Idempotency-Key each time, retrying a key
   * after a clean 503 until it is acknowledged, and one reader per region
   * (its regional top page and a player's rank). Returns each region's tally.
   */
  async function load(done: () => boolean): Promise<Record<string, Tally>> {
    const tally = Object.fromEntries(REGIONS.map((r) => [r, { ok: 0, unavailable: 0, bad: [] as string[] }])) as Record<string, Tally>;
    const record = (region: string, what: string, r: Reply | Error): boolean => {
      const t = tally[region]!;
      if (!(r instanceof Error) && r.status === 200) {
        t.ok++;
        return true;
      }
      if (!(r instanceof Error) && cleanUnavailable(r)) t.unavailable++;
      else if (t.bad.length < 20) t.bad.push(`${what}: ${r instanceof Error ? r.message : `${r.status} ${JSON.stringify(r.body)}`}`);
      return false;
    };
    const attempt = async (region: string, what: string, send: () => Promise<Reply>): Promise<boolean> => {
      try {
        return record(region, what, await send());
      } catch (e) {
        if (!(e instanceof NoAnswer)) throw e;
        return record(region, what, e);
      }
    };
    const writer = async (p: Player): Promise<void> => {
      while (!done()) {
        const key = `${p.userId}-${++p.seq}`;
        // A key is sent until it is acknowledged: a 503 (in doubt or not) is retried with the same key.
        for (let tries = 0; ; tries++) {
          if (await attempt(p.region, 'write', () => post(url('/score/add'), { delta: 1 }, { token: p.token, headers: { 'idempotency-key': key } }))) {
            p.acked++;
            break;
          }
          if (tries > 400) throw new Error(`write ${key} not acknowledged after ${tries} tries`);
          await sleep(50);
        }
      }
    };
    const reader = async (region: string): Promise<void> => {
      const someone = players.find((p) => p.region === region)!;
      while (!done()) {
        await attempt(region, 'top', () => call(url(`/top?region=${region}&limit=10`)));
        await attempt(region, 'rank', () => call(url(`/rank/${someone.userId}?region=${region}`)));
        await sleep(20);
      }
    };
    await Promise.all([...players.map(writer), ...REGIONS.map(reader)]);
    return tally;
  }

  /** Runs the load around `fault` (which resolves once the shard should be whole again), then AFTER_MS more. */
  async function underLoad(fault: () => Promise<void>): Promise<Record<string, Tally>> {
    let stop = false;
    const running = load(() => stop);
    await sleep(1000);
    try {
      await fault();
      // The hurt shard takes writes again: a write to NA acknowledged after the fault.
      const na = players.find((p) => p.region === 'NA')!;
      const before = na.acked;
      await eventually(async () => (na.acked > before ? true : undefined), STEP_MS, 'an NA write acknowledged after the fault');
      await sleep(AFTER_MS);
    } finally {
      stop = true;
    }
    return running;
  }

  function expectOthersUntouched(tally: Record<string, Tally>): void {
    for (const region of ['EU', 'ASIA']) {
      expect(tally[region]!.bad, `${region} errors`).to.deep.equal([]);
      expect(tally[region]!.unavailable, `${region} 503s`).to.equal(0);
      expect(tally[region]!.ok).to.be.greaterThan(0);
    }
    expect(tally.NA!.bad, 'NA answers other than 200 or a clean 503').to.deep.equal([]);
    expect(tally.NA!.ok).to.be.greaterThan(0);
  }

  /** Each player's entry holds exactly its acknowledged writes: score = acked adds, version = 1 (registration) + acked. */
  async function expectEveryAckInRedis(): Promise<void> {
    const wrong: string[] = [];
    for (const p of players) {
      const e = await stores!.redisUser(p.userId, p.region);
      if (e.score !== p.acked || e.version !== p.acked + 1) wrong.push(`${p.userId}: acked ${p.acked}, redis score ${e.score} version ${e.version}`);
    }
    expect(wrong).to.deep.equal([]);
  }

  async function primaryOf(shard: string): Promise<string> {
    return eventually(async () => (await s().redisPrimary(shard))?.name, STEP_MS, `the Sentinels' primary of ${shard}`);
  }

  /** Waits until `name` is a replica of the current primary of `shard`, in sync. */
  async function inSyncReplica(shard: string, name: string): Promise<void> {
    let last = '';
    await eventually(
      async () => {
        const primary = await s().redisPrimary(shard);
        const r = await s().redisRole(name).catch((e: Error) => e.message);
        last = `primary ${JSON.stringify(primary)}, ${name}: ${JSON.stringify(r)}`;
        return primary && primary.name !== name && typeof r === 'object' && r.role === 'slave' && r.linkUp && r.master?.port === primary.address.port ? true : undefined;
      },
      STEP_MS,
      `${name} an in-sync replica of ${shard}'s primary`,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; last seen: ${last}`);
    });
  }

  it('when the NA primary is killed with SIGKILL under load, then its replica is promoted, NA answers 200 or a clean 503 meanwhile, EU and ASIA see no error, no acknowledged write is lost, and the old primary rejoins as a replica', async () => {
    const killed = await primaryOf('na');
    const tally = await underLoad(async () => {
      s().sendSignal(killed, 'SIGKILL');
      await eventually(async () => ((await primaryOf('na')) !== killed ? true : undefined), STEP_MS, 'a promoted replica');
    });
    expectOthersUntouched(tally);
    await expectEveryAckInRedis();
    await inSyncReplica('na', killed);
  });

  it('when the NA primary hangs (SIGSTOP) under load, then it is failed over the same way, killed as hung by the supervisor, and rejoins as a replica of the promoted node', async () => {
    const frozen = await primaryOf('na');
    const before = s().component(frozen);
    const tally = await underLoad(async () => {
      s().sendSignal(frozen, 'SIGSTOP');
      await eventually(async () => ((await primaryOf('na')) !== frozen ? true : undefined), STEP_MS, 'a promoted replica');
    });
    expectOthersUntouched(tally);
    await expectEveryAckInRedis();
    await inSyncReplica('na', frozen);
    expect(s().component(frozen)).to.include({ restarts: before.restarts + 1, paused: false });
    expect(s().component(frozen).pid).to.not.equal(before.pid);
    expect(stackLog.join('\n')).to.contain(`✖ ${frozen} (port ${before.port}, pid ${before.pid}) has not answered PING`);
  });

  it('when the NA replica is killed under load, then NA refuses writes cleanly until it is back (no acknowledged write without a second copy), and then takes them again', async () => {
    const primary = await primaryOf('na');
    const replica = s().redisNodes('na').find((n) => n.name !== primary)!.name;
    const tally = await underLoad(async () => {
      s().sendSignal(replica, 'SIGKILL');
      await inSyncReplica('na', replica);
    });
    expectOthersUntouched(tally);
    await expectEveryAckInRedis();
    expect(await primaryOf('na')).to.equal(primary);
  });

  it('when the faults are over, then NA\'s top page, GLOBAL and the live stream through nginx are what the shards hold, the services counted the failovers, and the scripts work through the Sentinels', async function () {
    this.timeout(120_000);
    // What each board must show: every player with exactly its acknowledged writes (no other player wrote to these boards' top).
    const entries = (rows: { user_id: string; score: number }[]): string[] => rows.map((e) => `${e.user_id}=${e.score}`).sort();
    const expected = (ps: Player[]): string[] => ps.map((p) => `${p.userId}=${p.acked}`).sort();
    const na = players.filter((p) => p.region === 'NA');
    const top = await call(url(`/top?region=NA&limit=${na.length}`));
    expect(top.status).to.equal(200);
    expect(entries(top.body.rows)).to.deep.equal(expected(na));
    // GLOBAL is gathered from every shard, NA's promoted node included.
    const mine = new Set(players.map((p) => p.userId));
    const global = await call(url('/top?region=GLOBAL&limit=1000'));
    expect(global.status).to.equal(200);
    expect(entries((global.body.rows as { user_id: string; score: number }[]).filter((r) => mine.has(r.user_id)))).to.deep.equal(expected(players));
    // The live stream opened before the first fault ends on the same top.
    await live!.until(() => {
      const last = live!.events.at(-1);
      return last !== undefined && JSON.stringify(entries(dataOf(last).rows)) === JSON.stringify(expected(na));
    }, STEP_MS, "NA's live top equal to the shard's");

    const metrics = await (await fetch(`http://127.0.0.1:${s().component('leaderboard-service-1').metricsPort}/metrics`)).text();
    const sample = (name: string, shard: string): number => Number(new RegExp(`^${name}\\{[^}]*shard="${shard}"[^}]*\\} (\\S+)$`, 'm').exec(metrics)?.[1]);
    expect(sample('lb_redis_failovers_total', 'na')).to.be.at.least(2);
    expect(sample('lb_redis_failovers_total', 'eu')).to.equal(0);
    for (const shard of ['na', 'eu', 'asia']) expect(sample('lb_redis_replicas_online', shard), shard).to.equal(1);

    // The scripts find each shard's current primary through the Sentinels too.
    const queue = await script('check-queue', ['--json']);
    expect(queue.code, queue.stderr).to.equal(0);
    const report = JSON.parse(queue.stdout) as { shards: { shard: string }[] };
    expect(report.shards.map((r) => r.shard)).to.deep.equal(['na', 'eu', 'asia']);
  });

  // PENDING (issue 22 is blocked on it): after the three faults the queues sometimes do not drain within 90 s (1 of
  // 4 runs since the relays make an ended Queue again, on the clean-clone CI; another took ~80 s). The worker's log
  // ends with NOREPLICAS errors of its blocking commands during the replica loss and then says nothing: it looks like
  // BullMQ's known Sentinel failover bugs, a Worker that stops taking jobs silently (taskforcesh/bullmq#3088, #4378).
  // Nothing is lost (the events stay in the outbox and the queue), but it is not shown to reach Postgres. Turn this on
  // again with the fix (a worker watchdog, or BullMQ on node-redis' Sentinel client).
  it.skip('when the faults are over and the queues drain, then Postgres equals Redis with each version logged once', async function () {
    this.timeout(120_000);
    // Through connections of its own, made now: the stack's processes followed three failovers, and the test's view must not depend on its own clients having done so.
    const after = await StackStores.open(s().topology);
    try {
      await eventually(async () => ((await after.drained()) ? true : undefined), 90_000, 'every outbox and queue drained');
      expect(await after.failedJobs()).to.equal(0);
      expect(await after.compareRedisWithPostgres(players.map((p) => ({ user_id: p.userId, region: p.region })))).to.deep.equal([]);
    } finally {
      await after.close();
    }

  });

  /** A script of scripts/ as `npm run <name>` runs it, against this stack's topology (the Sentinels). */
  function script(name: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        [...SOURCE_NODE_ARGS, join(REPO_ROOT, 'scripts', `${name}.ts`), ...args],
        { cwd: REPO_ROOT, env: { ...process.env, TOPOLOGY: topologyJson(s().topology), JWT_SECRET: s().jwtSecret, LOG_LEVEL: 'warn' }, timeout: 60_000 },
        (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
      );
    });
  }
});
