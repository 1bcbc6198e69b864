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
 * 4. CPU per persisted event: the relays of three replicas in a process of
 *    their own (relay-driver.ts) fed at 500, 1,000 and 2,000 events/s and
 *    as fast as they take them (saturation), a worker-service process;
 *    the CPU time of the relays, the three Redis shards, the worker and
 *    Postgres (from /proc) over the run, divided by the events persisted.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { Queue } from 'bullmq';
import pg from 'pg';
import { DEFAULT_PROJECT, jobIdOf, SCORE_JOB, type ScoreEvent, type Topology } from '@lb/common/contracts';
import { createLogger, ensureDatabase, migrateTopology, PgPools, signToken, topologyJson } from '@lb/common/platform';
import { freePort, startPostgres, startRedis, type PostgresProcess, type RedisProcess } from '@lb/devtools/infra';
import { onInterrupt } from './interrupt.js';
import { findRepoRoot } from '@lb/devtools/testing';
import { ScoreRepository } from '@lb/worker-service/db';
import { loadConfig as loadServiceConfig } from '@lb/leaderboard-service/config';
import { EventRelays, ShardStores } from '@lb/leaderboard-service/ops';
import { cpuByGroup } from './http.js';
import { fmt, median, pct, spread } from './machine.js';
import type { DriverDone } from './relay-driver.js';

const root = findRepoRoot();
const SECRET = 'bench-secret-bench-secret-bench-secret-0';

export interface PersistenceResult {
  rawEventsPerS: number;
  oneShardEventsPerS: number;
  threeShardEventsPerS: number;
  perShard: Record<string, number>;
  singleJobEventsPerS: number;
  lag: { rate: number; seconds: number; sent: number; ok: number; refused: number; p50: number; p99: number; max: number };
  /** CPU per persisted event at each rate (500, 1,000, 2,000 events/s, saturation): one run per round. */
  cpu: CpuRun[][];
}

/** The processes whose CPU time a persisted event costs. */
export const PIPELINE_PARTS = ['relay', 'redis', 'worker', 'postgres'] as const;
export type PipelinePart = (typeof PIPELINE_PARTS)[number];

export interface CpuRun {
  /** Events per second asked for; 0 = as fast as the relays take them. */
  target: number;
  /** Events persisted per second: fed ÷ feed time (paced), or ÷ time to the last COMMIT (saturation). */
  rate: number;
  events: number;
  /** CPU ms per persisted event, by process group. */
  msPerEvent: Record<PipelinePart, number>;
  total: number;
  /** CPU ms per event of the bench's own outbox writes (driver and Redis), subtracted from relay and Redis. */
  feed: number;
  /** Events per queue job (relays) and per Postgres batch (worker). */
  perJob: number;
  perBatch: number;
  /** Event written to its outbox → its batch's transaction, ms. */
  lag: { p50: number; p99: number; max: number };
  lingerMs: number;
  envelopeMax: number;
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
    shards: ['na', 'eu', 'asia'].map((id, i) => ({ id, redis: { kind: 'server' as const, url: redis[i]!.url }, postgres: postgres.urlFor(`bench_${id}`) })),
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
  const pools = new PgPools(e.topology.shards, { size: 2, servicePassword: undefined, statementTimeoutMs: 60_000, applicationName: 'bench' }, createLogger('bench', 'error'));
  const repo = new ScoreRepository(pools);
  const events = makeEvents('raw-', 50_000, 2, 'NA');
  // Warm-up, then the timed run.
  await repo.applyBatch('na', DEFAULT_PROJECT, makeEvents('warm-', 1000, 1, 'NA'));
  const t0 = performance.now();
  for (let i = 0; i < events.length; i += 1000) await repo.applyBatch('na', DEFAULT_PROJECT, events.slice(i, i + 1000));
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
  const defaults = loadServiceConfig({ ...process.env, TOPOLOGY: topologyJson(e.topology), JWT_SECRET: SECRET });
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
    TOPOLOGY: topologyJson(e.topology),
    KEY_PREFIX: prefix,
    WORKER_SHARDS: shardIds.join(','),
    LOG_LEVEL: 'warn',
    HEALTH_PORT: String(healthPort),
    METRICS_PORT: String(await freePort()),
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
    TOPOLOGY: topologyJson(e.topology),
    JWT_SECRET: SECRET,
    KEY_PREFIX: 'lag',
    ACCESS_LOG: 'false',
    LOG_LEVEL: 'warn',
    USER_RATE_LIMIT_COUNT: '1000',
  };
  // Two replicas, as behind the gateways: one process alone saturates a core before 2,000 writes/s.
  // Metrics on, as in the stack, each on a free port (the defaults would collide with each other and with a running stack).
  const metricsPorts = [await freePort(), await freePort(), await freePort()];
  const services = ports.map((p, i) => spawnService('leaderboard-service/dist/index.js', { ...env, PORT: String(p), INSTANCE_ID: `lag-${i}`, METRICS_PORT: String(metricsPorts[i]) }));
  const worker = spawnService('worker-service/dist/index.js', { ...env, METRICS_PORT: String(metricsPorts[2]) });
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

/** Starts a compiled worker-service process for `prefix` and waits for its /health; its metrics are on, as in the stack. */
async function startWorker(e: Env, prefix: string): Promise<{ child: ChildProcess; healthPort: number }> {
  const healthPort = await freePort();
  const child = spawnService('worker-service/dist/index.js', {
    TOPOLOGY: topologyJson(e.topology),
    KEY_PREFIX: prefix,
    LOG_LEVEL: 'warn',
    HEALTH_PORT: String(healthPort),
    METRICS_PORT: String(await freePort()),
  });
  for (let i = 0; i < 300 && !(await fetch(`http://127.0.0.1:${healthPort}/health`).then((r) => r.ok, () => false)); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, healthPort };
}

/** Postgres batches a worker-service has written (its /health). */
async function batchesOf(healthPort: number): Promise<number> {
  const health = (await fetch(`http://127.0.0.1:${healthPort}/health`).then((r) => r.json())) as { shards: { batches: { batches: number } }[] };
  return health.shards.reduce((n, sh) => n + sh.batches.batches, 0);
}

/** What one driver run measured: CPU ms per event by group, and the driver's counts. */
interface Measured {
  msPerEvent: Record<PipelinePart, number>;
  done: DriverDone;
  /** Seconds from the first measured event to the last COMMIT (feed only: to the last write). */
  seconds: number;
  /** Postgres batches the worker wrote in the measured run. */
  batches: number;
  startedAt: number;
}

/**
 * One run of the relay driver (relay-driver.ts) with a worker-service, for
 * a prefix of their own: the CPU time of the driver, the Redis shards, the
 * worker and Postgres (postmaster, backends and auxiliary processes) from
 * the first event of the measured run (after the driver's warm-up) to the
 * moment every event is committed. `feedOnly`: the driver only writes the
 * events to the outboxes, with no relay and no worker.
 */
async function measure(e: Env, target: number, opts: { seconds: number; saturationPerShard: number }, prefix: string, feedOnly: boolean): Promise<Measured> {
  const worker = feedOnly ? undefined : await startWorker(e, prefix);
  const driver = spawn(process.execPath, ['--import', 'tsx', join(root, 'scripts/bench/relay-driver.ts')], {
    cwd: root,
    env: {
      ...process.env,
      TOPOLOGY: topologyJson(e.topology),
      KEY_PREFIX: prefix,
      BENCH_RATE: String(target),
      BENCH_SECONDS: String(opts.seconds),
      BENCH_EVENTS: String(opts.saturationPerShard),
      BENCH_FEED_ONLY: feedOnly ? '1' : '0',
      LOG_LEVEL: 'error',
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const forget = onInterrupt(() => stopChild(driver));
  driver.once('exit', forget);
  const message = <T>(type: string) =>
    new Promise<T>((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`relay driver exited (${code}) before '${type}'`));
      driver.once('exit', onExit);
      driver.on('message', function on(m: { type?: string }) {
        if (m.type !== type) return;
        driver.off('message', on);
        driver.off('exit', onExit);
        resolve(m as T);
      });
    });
  try {
    await message('ready');
    // Both idle for a moment: their start-up is not the pipeline's cost.
    await new Promise((r) => setTimeout(r, 1000));
    const groups: Record<PipelinePart, number[]> = { relay: [driver.pid!], redis: e.redis.map((r) => r.pid), worker: worker ? [worker.child.pid!] : [], postgres: [e.postgres.pid] };
    const batchesBefore = worker ? await batchesOf(worker.healthPort) : 0;
    const before = cpuByGroup(groups);
    const t0 = performance.now();
    const startedAt = Date.now();
    const finished = message<DriverDone>('done');
    driver.send({ type: 'go' });
    const done = await finished;
    const seconds = (performance.now() - t0) / 1000;
    const after = cpuByGroup(groups);
    const batches = worker ? (await batchesOf(worker.healthPort)) - batchesBefore : 0;
    const msPerEvent = Object.fromEntries(PIPELINE_PARTS.map((g) => [g, Math.max(0, ((after[g]! - before[g]!) * 1000) / done.events)])) as Record<PipelinePart, number>;
    return { msPerEvent, done, seconds, batches, startedAt };
  } finally {
    await stopChild(driver);
    if (worker) await stopChild(worker.child);
  }
}

/**
 * CPU per persisted event at one rate: a pipeline run, then the same events
 * written by the driver alone (feed only), whose CPU in the driver and in
 * Redis is subtracted: the bench's own writes of the events to the outboxes
 * stand for a few commands inside the write script, which the write makes anyway.
 */
async function cpuRun(e: Env, target: number, opts: { seconds: number; saturationPerShard: number }, prefix: string, log: (s: string) => void): Promise<CpuRun> {
  const run = await measure(e, target, opts, prefix, false);
  const feed = await measure(e, target, opts, `${prefix}f`, true);
  const msPerEvent = { ...run.msPerEvent };
  for (const g of ['relay', 'redis'] as const) msPerEvent[g] = Math.max(0, run.msPerEvent[g] - feed.msPerEvent[g]);
  const { done } = run;
  const lag = await commitLags(e, prefix, run.startedAt);
  const r: CpuRun = {
    target,
    rate: target > 0 ? done.events / done.feedSeconds : done.events / run.seconds,
    events: done.events,
    msPerEvent,
    total: PIPELINE_PARTS.reduce((n, g) => n + msPerEvent[g], 0),
    feed: feed.msPerEvent.relay + feed.msPerEvent.redis,
    perJob: done.events / Math.max(1, done.jobs),
    perBatch: done.events / Math.max(1, run.batches),
    lag,
    lingerMs: done.lingerMs,
    envelopeMax: done.envelopeMax,
  };
  log(
    `CPU per persisted event at ${target > 0 ? `${fmt(target)} events/s` : 'saturation'} (${fmt(r.rate)} events/s, ${fmt(r.events)} events): ${r.total.toFixed(3)} ms (${PIPELINE_PARTS.map((g) => `${g} ${msPerEvent[g].toFixed(3)}`).join(', ')}; the bench's outbox writes, ${r.feed.toFixed(3)} ms, subtracted); ${fmt(r.perJob, 1)} events per job, ${fmt(r.perBatch, 1)} per batch; written → commit p50 ${fmt(lag.p50)} ms, p99 ${fmt(lag.p99)} ms, max ${fmt(lag.max)} ms`,
  );
  return r;
}

/** Outbox write (the event's ts) → its batch's transaction (created_at), over the events of a prefix written since `sinceMs`, ms. */
async function commitLags(e: Env, prefix: string, sinceMs: number): Promise<CpuRun['lag']> {
  const lags: number[] = [];
  for (const s of e.topology.shards) {
    const c = new pg.Client({ connectionString: s.postgres });
    await c.connect();
    try {
      const { rows } = await c.query<{ lag: string }>(
        `SELECT greatest(0, extract(epoch from created_at - ts) * 1000)::bigint AS lag FROM board_score_events WHERE user_id LIKE $1 AND ts >= timestamptz 'epoch' + $2 * interval '1 millisecond'`,
        [`${prefix}-%`, sinceMs],
      );
      for (const r of rows) lags.push(Number(r.lag));
    } finally {
      await c.end();
    }
  }
  lags.sort((a, b) => a - b);
  return { p50: pct(lags, 50), p99: pct(lags, 99), max: lags[lags.length - 1] ?? NaN };
}

/** The rates of the CPU runs, events/s; 0 = saturation. */
export const CPU_TARGETS = [500, 1000, 2000, 0] as const;

/** The CPU runs: each round runs every rate of {@link CPU_TARGETS} once (rounds alternate, so the VM's drift spreads over every rate). Per rate, one result per round. */
export async function cpuRuns(e: Env, log: (s: string) => void, opts: { seconds: number; saturationPerShard: number; rounds: number }): Promise<CpuRun[][]> {
  const out: CpuRun[][] = CPU_TARGETS.map(() => []);
  for (let round = 0; round < opts.rounds; round++) {
    for (const [i, target] of CPU_TARGETS.entries()) out[i]!.push(await cpuRun(e, target, opts, `cpu${round}r${target}`, log));
  }
  return out;
}

/** Only the CPU runs, on an environment of their own (`npm run bench -- --only persistence --runs cpu`). */
export async function benchPipelineCpu(log: (s: string) => void, opts: { seconds: number; saturationPerShard: number; rounds: number }): Promise<CpuRun[][]> {
  const e = await up();
  try {
    return await cpuRuns(e, log, opts);
  } finally {
    await down(e);
  }
}

export async function benchPersistence(log: (s: string) => void, opts: { perShard: number; lagRate: number; lagSeconds: number; cpuSeconds: number; rounds: number }): Promise<PersistenceResult> {
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
    const cpu = await cpuRuns(e, log, { seconds: opts.cpuSeconds, saturationPerShard: opts.perShard, rounds: opts.rounds });
    return { rawEventsPerS: raw, oneShardEventsPerS: one.total, threeShardEventsPerS: three.total, perShard: three.perShard, singleJobEventsPerS: single.total, lag, cpu };
  } finally {
    await down(e);
  }
}

/**
 * The CPU runs as a markdown table: per rate, the median over the rounds of
 * each process group's CPU ms per event, the total with its range, the
 * envelope and batch sizes, the lag, what was subtracted, and the targets (≤ 0.1 ms per event at
 * ~1,000 events/s; lag p99 < 1 s at every paced rate).
 */
export function cpuTable(runs: readonly CpuRun[][]): string {
  const row = (rs: readonly CpuRun[]) => {
    const target = rs[0]!.target;
    const total = median(rs.map((r) => r.total));
    const p99 = median(rs.map((r) => r.lag.p99));
    const marks = [
      ...(target === 1000 ? [`≤ 0.1 ms ${total <= 0.1 ? '✅' : '❌'}`] : []),
      ...(target > 0 ? [`lag p99 < 1 s ${p99 < 1000 ? '✅' : '❌'}`] : []),
    ];
    return `| ${target > 0 ? `${fmt(target)} events/s` : `saturation: ${spread(rs.map((r) => r.rate))} events/s`} | ${PIPELINE_PARTS.map((g) => median(rs.map((r) => r.msPerEvent[g])).toFixed(3)).join(' | ')} | **${spread(rs.map((r) => r.total), 3)} ms** | ${fmt(median(rs.map((r) => r.perJob)), 1)} / ${fmt(median(rs.map((r) => r.perBatch)), 1)} | ${fmt(median(rs.map((r) => r.lag.p50)))} / ${fmt(p99)} ms | ${median(rs.map((r) => r.feed)).toFixed(3)} | ${marks.join(', ') || '—'} |`;
  };
  return `| rate | relay | Redis | worker | Postgres | CPU per persisted event | events per job / per batch | lag p50 / p99 | bench's outbox writes (subtracted) | target |
|---|---|---|---|---|---|---|---|---|---|
${runs.map(row).join('\n')}`;
}
