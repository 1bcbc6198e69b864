/**
 * Persistence benchmark (issue: write-behind pipeline).
 *
 * 1. Raw baseline: the worker's own batch UPSERT (ScoreRepository.applyBatch)
 *    called directly with batches of 1,000 events on one shard's database.
 * 2. Pipeline throughput: events pre-loaded on a shard's BullMQ queue, then a
 *    worker-service process consumes them; events/s from the worker's start
 *    to the last COMMIT — one shard alone, then three shards at once.
 * 3. End-to-end lag: a leaderboard-service and a worker-service process, a
 *    steady stream of /score/add at a fixed rate; lag = score_events.created_at
 *    (Postgres transaction time of the batch) − the time the client got 200.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { Queue } from 'bullmq';
import pg from 'pg';
import { jobIdOf, SCORE_JOB, type ScoreEvent, type Topology } from '@lb/common/contracts';
import {
  createLogger,
  PgPools,
  ensureDatabase,
  migrateTopology,
  signToken,
} from '@lb/common/platform';
import { freePort, startPostgres, startRedis, type PostgresProcess, type RedisProcess } from '@lb/devtools/infra';
import { onInterrupt } from './interrupt.js';
import { findRepoRoot } from '@lb/devtools/testing';
import { ScoreRepository } from '@lb/worker-service/db';
import { loadConfig as loadServiceConfig } from '@lb/leaderboard-service/config';
import { EventRelays, ShardStores } from '@lb/leaderboard-service/ops';
import { fmt, pct } from './machine.js';

const root = findRepoRoot();
const SECRET = 'bench-secret-bench-secret-bench-secret-0';

export interface PersistenceResult {
  rawEventsPerS: number;
  oneShardEventsPerS: number;
  threeShardEventsPerS: number;
  perShard: Record<string, number>;
  singleJobEventsPerS: number;
  lag: { rate: number; seconds: number; sent: number; ok: number; refused: number; p50: number; p99: number; max: number };
}

interface Env {
  dir: string;
  redis: RedisProcess[];
  postgres: PostgresProcess;
  topology: Topology;
  /** Unregisters the interruption cleanup. */
  forget: () => void;
}

export async function up(): Promise<Env> {
  const dir = await mkdtemp(join(tmpdir(), 'lb-bench-'));
  const redis: RedisProcess[] = [];
  let postgres: PostgresProcess | undefined;
  const forget = onInterrupt(() => down({ dir, redis, postgres }));
  for (const id of ['na', 'eu', 'asia']) redis.push(await startRedis({ dir: join(dir, `redis-${id}`), appendOnly: true, name: id }));
  postgres = await startPostgres({ dataDir: join(dir, 'pg') });
  const topology: Topology = {
    shards: ['na', 'eu', 'asia'].map((id, i) => ({ id, redis: redis[i]!.url, postgres: postgres.urlFor(`bench_${id}`) })),
    regions: { NA: 'na', EU: 'eu', ASIA: 'asia' },
  };
  for (const s of topology.shards) await ensureDatabase(s.postgres);
  await migrateTopology(topology, join(root, 'sql'));
  return { dir, redis, postgres, topology, forget };
}

export async function down(e: Pick<Env, 'dir' | 'redis'> & { postgres: PostgresProcess | undefined; forget?: () => void }): Promise<void> {
  e.forget?.();
  await e.postgres?.stop().catch(() => undefined);
  for (const r of e.redis) await r.stop().catch(() => undefined);
  await rm(e.dir, { recursive: true, force: true });
}

function makeEvents(prefix: string, players: number, versions: number, region: string): ScoreEvent[] {
  const out: ScoreEvent[] = [];
  const now = Date.now();
  for (let v = 1; v <= versions; v++) {
    for (let p = 0; p < players; p++) {
      out.push({ user_id: `${prefix}${p}`, name: `Player ${p}`, region, op: 'update', delta: 1, score: v * 10 + (p % 97), version: v, ts: now, request_id: 'bench' });
    }
  }
  return out;
}

async function rawBaseline(e: Env, log: (s: string) => void): Promise<number> {
  const pools = new PgPools(e.topology.shards, { size: 2, statementTimeoutMs: 60_000, applicationName: 'bench' }, createLogger('bench', 'error'));
  const repo = new ScoreRepository(pools);
  const events = makeEvents('raw-', 50_000, 2, 'NA');
  // Warm-up, then the timed run.
  await repo.applyBatch('na', makeEvents('warm-', 1000, 1, 'NA'));
  const t0 = performance.now();
  for (let i = 0; i < events.length; i += 1000) await repo.applyBatch('na', events.slice(i, i + 1000));
  const s = (performance.now() - t0) / 1000;
  await pools.close();
  const rate = events.length / s;
  log(`raw batched UPSERT (1,000 rows/batch, one shard): ${fmt(events.length)} events in ${fmt(s, 2)} s = ${fmt(rate)} events/s`);
  return rate;
}

function spawnService(entry: string, env: Record<string, string>): ChildProcess {
  // The compiled services, as they ship (bootstrap builds before `bench`).
  const child = spawn(process.execPath, [entry], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
  const forget = onInterrupt(() => stopChild(child));
  child.once('exit', forget);
  return child;
}

async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const gone = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  await gone;
}

async function queueCounts(queues: Queue[]): Promise<number> {
  let n = 0;
  for (const q of queues) {
    const c = await q.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    n += c.waiting! + c.active! + c.delayed! + c.prioritized!;
  }
  return n;
}

/**
 * Persistence throughput from the outbox to COMMIT. A worker-service process
 * is started first; then the events are written to the shards' outboxes (as
 * the write script does) and the service's own relay (the code the replicas
 * run, with its default settings) takes them in full envelopes, one after
 * the other. `singleJobs` instead pre-loads one job per event (what a relay
 * with envelopes of one would send) and starts the worker after: BullMQ's
 * per-job cost alone.
 */
export async function pipelineRun(e: Env, shardIds: string[], perShard: number, prefix: string, singleJobs = false): Promise<{ total: number; perShard: Record<string, number> }> {
  const shards = e.topology.shards.filter((s) => shardIds.includes(s.id));
  const log = createLogger('bench', 'error');
  const stores = new ShardStores(shards, prefix, 10_000, log);
  await stores.connect(log);
  const defaults = loadServiceConfig({ TOPOLOGY: JSON.stringify(e.topology), JWT_SECRET: SECRET });
  const relays = new EventRelays(
    stores.all(),
    { keyPrefix: prefix, jobs: { attempts: 5, backoffMs: 200 }, batchMax: defaults.relayEnvelopeMax, lingerMs: defaults.relayLingerMs, leaseMs: defaults.relayLeaseMs },
    log,
  );
  await relays.ready(5000);
  const events = new Map(shardIds.map((id) => [id, makeEvents(`${prefix}-${id}-`, perShard / 2, 2, 'NA')]));
  for (const id of shardIds) PER_SHARD_EXPECTED.set(`${prefix}-${id}`, perShard);
  if (singleJobs) {
    for (const id of shardIds) {
      const q = relays.get(id).queue;
      const evs = events.get(id)!;
      for (let j = 0; j < evs.length; j += 2000) {
        await q.addBulk(evs.slice(j, j + 2000).map((ev) => ({ name: SCORE_JOB, data: ev, opts: { jobId: jobIdOf(ev) } })));
      }
    }
  }
  const healthPort = await freePort();
  const worker = spawnService('worker-service/dist/index.js', {
    TOPOLOGY: JSON.stringify(e.topology),
    KEY_PREFIX: prefix,
    WORKER_SHARDS: shardIds.join(','),
    LOG_LEVEL: 'warn',
    HEALTH_PORT: String(healthPort),
  });
  if (!singleJobs) {
    for (let i = 0; i < 300 && !(await fetch(`http://127.0.0.1:${healthPort}/health`).then((r) => r.ok, () => false)); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const t0 = performance.now();
  if (!singleJobs) {
    await Promise.all(
      shardIds.map(async (id) => {
        const store = stores.get(id);
        const evs = events.get(id)!;
        for (let j = 0; j < evs.length; j += 5000) {
          const chunk = evs.slice(j, j + 5000);
          const now = Date.now();
          await store.client
            .multi()
            .hSet(store.keys.outbox, Object.fromEntries(chunk.map((ev) => [jobIdOf(ev), JSON.stringify(ev)])))
            .zAdd(store.keys.outboxIndex, chunk.map((ev) => ({ score: now, value: jobIdOf(ev) })))
            .exec();
        }
      }),
    );
    relays.start();
  }
  const done: Record<string, number> = {};
  while (Object.keys(done).length < shardIds.length) {
    await new Promise((r) => setTimeout(r, 50));
    for (const id of shardIds) {
      if (done[id] !== undefined) continue;
      if ((await queueCounts([relays.get(id).queue])) === 0 && (await pendingInDb(e, id, prefix)) === 0) {
        done[id] = perShard / ((performance.now() - t0) / 1000);
      }
    }
  }
  const s = (performance.now() - t0) / 1000;
  await stopChild(worker);
  await relays.close();
  await stores.close();
  return { total: (perShard * shardIds.length) / s, perShard: done };
}

/** Events of a run not yet in score_events (0 once the relay's last envelope is committed). */
async function pendingInDb(e: Env, shardId: string, prefix: string): Promise<number> {
  const c = new pg.Client({ connectionString: e.topology.shards.find((s) => s.id === shardId)!.postgres });
  await c.connect();
  try {
    const { rows } = await c.query<{ n: string }>(`SELECT count(*) AS n FROM score_events WHERE user_id LIKE $1`, [`${prefix}-${shardId}-%`]);
    return (PER_SHARD_EXPECTED.get(`${prefix}-${shardId}`) ?? 0) - Number(rows[0]!.n);
  } finally {
    await c.end();
  }
}
const PER_SHARD_EXPECTED = new Map<string, number>();

/** Paced /score/add stream at `rate` per second for `seconds`; returns ack times per (user, version). */
async function lagRun(e: Env, rate: number, seconds: number, log: (s: string) => void): Promise<PersistenceResult['lag']> {
  const ports = [await freePort(), await freePort()];
  const env = {
    TOPOLOGY: JSON.stringify(e.topology),
    JWT_SECRET: SECRET,
    KEY_PREFIX: 'lag',
    ACCESS_LOG: 'false',
    LOG_LEVEL: 'warn',
    USER_RATE_LIMIT_COUNT: '1000',
  };
  // Two replicas, as behind the gateways: one process alone saturates a core before 2,000 writes/s.
  const services = ports.map((p, i) => spawnService('leaderboard-service/dist/index.js', { ...env, PORT: String(p), INSTANCE_ID: `lag-${i}` }));
  const worker = spawnService('worker-service/dist/index.js', env);
  const agent = new Agent({ keepAlive: true, maxSockets: 128 });
  try {
    for (const port of ports) {
      for (let i = 0; i < 300; i++) {
        const ok = await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok, () => false);
        if (ok) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const players = 5000;
    const regions = ['NA', 'EU', 'ASIA'];
    const tokens = Array.from({ length: players }, (_, i) =>
      signToken({ userId: `lag-${i}`, name: `Lag ${i}`, region: regions[i % 3]! }, { secret: SECRET, issuer: 'leaderboard-platform', ttlSeconds: 3600 }),
    );
    const acks = new Map<string, number>();
    let sent = 0;
    let ok = 0;
    let refused = 0;
    const post = (i: number) =>
      new Promise<void>((resolve) => {
        const body = '{"delta":1}';
        const req = request(
          { host: '127.0.0.1', port: ports[i % ports.length], path: '/score/add', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': body.length, authorization: `Bearer ${tokens[i % players]}` } },
          (res) => {
            let data = '';
            res.on('data', (d) => (data += d));
            res.on('end', () => {
              const at = Date.now();
              if (res.statusCode === 200) {
                ok++;
                const b = JSON.parse(data) as { user_id: string; version: number };
                acks.set(`${b.user_id}#${b.version}`, at);
              } else refused++;
              resolve();
            });
          },
        );
        req.on('error', () => {
          refused++;
          resolve();
        });
        req.end(body);
      });
    const inflight: Promise<void>[] = [];
    const t0 = Date.now();
    const tickMs = 10;
    for (let tick = 0; tick < (seconds * 1000) / tickMs; tick++) {
      const due = Math.round(((tick + 1) * tickMs * rate) / 1000) - sent;
      for (let k = 0; k < due; k++) inflight.push(post(sent++));
      const wait = t0 + (tick + 1) * tickMs - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    await Promise.all(inflight);
    const achieved = sent / ((Date.now() - t0) / 1000);
    // Wait for persistence, then read commit times.
    const lags: number[] = [];
    const deadline = Date.now() + 60_000;
    for (const s of e.topology.shards) {
      const c = new pg.Client({ connectionString: s.postgres });
      await c.connect();
      try {
        for (;;) {
          const { rows } = await c.query<{ user_id: string; version: string; created_ms: string }>(
            `SELECT user_id, version, (extract(epoch from created_at) * 1000)::bigint AS created_ms FROM score_events WHERE user_id LIKE 'lag-%'`,
          );
          const mine = rows.filter((r) => acks.has(`${r.user_id}#${r.version}`));
          const expected = [...acks.keys()].filter((k) => s.id === ['na', 'eu', 'asia'][Number(k.slice(4, k.indexOf('#'))) % 3]).length;
          if (mine.length >= expected || Date.now() > deadline) {
            for (const r of mine) lags.push(Math.max(0, Number(r.created_ms) - acks.get(`${r.user_id}#${r.version}`)!));
            break;
          }
          await new Promise((r) => setTimeout(r, 200));
        }
      } finally {
        await c.end();
      }
    }
    lags.sort((a, b) => a - b);
    const result = { rate: achieved, seconds, sent, ok, refused, p50: pct(lags, 50), p99: pct(lags, 99), max: lags[lags.length - 1] ?? NaN };
    log(`lag at ${fmt(achieved)} writes/s for ${seconds} s: ${fmt(ok)} acknowledged, ${fmt(refused)} refused; ack→commit p50 ${fmt(result.p50)} ms, p99 ${fmt(result.p99)} ms, max ${fmt(result.max)} ms (${fmt(lags.length)} events matched)`);
    return result;
  } finally {
    agent.destroy();
    for (const s of services) await stopChild(s);
    await stopChild(worker);
  }
}

export async function benchPersistence(log: (s: string) => void, opts: { perShard: number; lagRate: number; lagSeconds: number }): Promise<PersistenceResult> {
  const e = await up();
  try {
    const raw = await rawBaseline(e, log);
    const one = await pipelineRun(e, ['na'], opts.perShard, 'one');
    log(`pipeline, one shard alone: ${fmt(opts.perShard)} events, ${fmt(one.total)} events/s (${fmt((100 * one.total) / raw)}% of raw)`);
    const single = await pipelineRun(e, ['na'], opts.perShard / 2, 'single', true);
    log(`pipeline, one shard, one job per event (no envelopes): ${fmt(single.total)} events/s (${fmt((100 * single.total) / raw)}% of raw)`);
    const three = await pipelineRun(e, ['na', 'eu', 'asia'], opts.perShard, 'three');
    log(`pipeline, three shards at once: ${fmt(3 * opts.perShard)} events, ${fmt(three.total)} events/s in total; per shard ${Object.entries(three.perShard).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}`);
    const lag = await lagRun(e, opts.lagRate, opts.lagSeconds, log);
    return { rawEventsPerS: raw, oneShardEventsPerS: one.total, threeShardEventsPerS: three.total, perShard: three.perShard, singleJobEventsPerS: single.total, lag };
  } finally {
    await down(e);
  }
}
