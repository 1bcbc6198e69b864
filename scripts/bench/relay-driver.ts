/**
 * A child process of the persistence bench: the producing end of the
 * pipeline as the leaderboard-service replicas run it, without the HTTP and
 * scoring work around it, so that its CPU can be read from /proc on its own.
 *
 * It stands for BENCH_REPLICAS replicas (default 3, as `npm start` runs),
 * each with its own shard connections and a relay per shard, with the
 * service's relay settings (its defaults, or RELAY_* from the environment).
 * Every 50 ms it writes the events due on each shard, in the write script's
 * shape, to that shard's outbox and its index (one HSET and one ZADD per
 * shard and tick), where the relay that holds the shard takes them from.
 * BENCH_RATE=0 writes BENCH_EVENTS per shard as fast as Redis takes them
 * (the saturation run). 2 s of events at the run's rate go first,
 * unmeasured, so the processes' code is compiled when the run starts. When
 * every event is written it closes the relays (the holders enqueue what is
 * left) and waits for the outboxes to empty: the worker deletes outbox
 * entries after their COMMIT, so then every event is in Postgres.
 *
 * BENCH_FEED_ONLY=1 writes the same events on the same clock with no relay
 * running, and deletes them afterwards: the bench subtracts what that costs
 * (this process and Redis), since in the service the write script puts the
 * event in the outbox within a call the write makes anyway.
 *
 * Runs the compiled relay (no `development` condition), as the services do.
 * IPC: sends `ready`, waits for `go`, sends `done` with the counts.
 */
import { createLogger, Metrics, redisCallMetrics, type Logger } from '@lb/common/platform';
import { loadConfig } from '@lb/leaderboard-service/config';
import { EventRelays, ShardStores } from '@lb/leaderboard-service/ops';

export interface DriverDone {
  type: 'done';
  /** Events written and persisted (or, feed only, written). */
  events: number;
  /** Seconds from `go` to the last event written. */
  feedSeconds: number;
  /** Queue jobs the relays enqueued. */
  jobs: number;
  lingerMs: number;
  envelopeMax: number;
}

const env = process.env;
const config = loadConfig({ ...env, JWT_SECRET: 'relay-driver-secret-relay-driver-secret', PORT: '0' });
const rate = Number(env.BENCH_RATE ?? 0);
const seconds = Number(env.BENCH_SECONDS ?? 10);
const saturationEvents = Number(env.BENCH_EVENTS ?? 20_000);
const replicas = Number(env.BENCH_REPLICAS ?? 3);
const feedOnly = env.BENCH_FEED_ONLY === '1';
const prefix = config.keyPrefix;
const log: Logger = createLogger('relay-driver', 'error');
const regionOf: Record<string, string> = Object.fromEntries(Object.entries(config.topology.regions).map(([region, shard]) => [shard, region]));

let jobs = 0;
const calls = redisCallMetrics(new Metrics(true, 'relay-driver'));
const replicaSet = await Promise.all(
  Array.from({ length: feedOnly ? 1 : replicas }, async () => {
    const stores = new ShardStores(config.topology.shards, prefix, config.redisCommandTimeoutMs, log);
    await stores.connect(log);
    if (feedOnly) return { stores, relays: undefined };
    const relays = new EventRelays(
      stores.all(),
      {
        keyPrefix: prefix,
        jobs: { attempts: config.jobAttempts, backoffMs: config.jobBackoffMs },
        batchMax: config.relayEnvelopeMax,
        lingerMs: config.relayLingerMs,
        leaseMs: config.relayLeaseMs,
        metrics: { envelope: () => void jobs++, calls },
      },
      log,
    );
    await relays.ready(5000);
    relays.start();
    return { stores, relays };
  }),
);
const writer = replicaSet[0]!.stores;
const shards = config.topology.shards.map((s) => s.id);

/** Per shard: the next version of each of its players. */
const PLAYERS = 5000;
const versions = new Map(shards.map((s) => [s, new Uint32Array(PLAYERS)]));
const perShard = rate > 0 ? Math.ceil((rate * seconds) / shards.length) : saturationEvents;
/** Events per shard written before the measured run, at its rate (for 2 s; saturation: 2 s at 2,000/s). */
const warmUp = Math.ceil(((rate > 0 ? rate : 2000) * 2) / shards.length);

/** Writes events `from` … `from + n - 1` of a shard, in the write script's shape, to its outbox and index. */
async function feed(shardId: string, from: number, n: number): Promise<void> {
  if (n <= 0) return;
  const store = writer.get(shardId);
  const v = versions.get(shardId)!;
  const now = Date.now();
  const fields: Record<string, string> = {};
  const index: { score: number; value: string }[] = [];
  for (let i = from; i < from + n; i++) {
    const p = i % PLAYERS;
    const version = ++v[p]!;
    const uid = `${prefix}-${shardId}-${p}`;
    const id = `main/all/${uid}#${version}`;
    const member = `${String(Math.floor(now / 1000)).padStart(10, '0')}${String((now % 1000) * 1000).padStart(6, '0')}|${uid}`;
    fields[id] = JSON.stringify({ user_id: uid, name: `Player ${p}`, region: regionOf[shardId], op: 'add', delta: 1, score: version, version, ts: now, request_id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, board: 'main', period: 'all', member });
    index.push({ score: now, value: id });
  }
  await store.client.multi().hSet(store.keys.outbox, fields).zAdd(store.keys.outboxIndex, index).exec();
}

/** Writes events `from` … `to - 1` of every shard at `perSecond` in all (0 = as fast as Redis takes them). */
async function pace(from: number, to: number, perSecond: number): Promise<void> {
  const t0 = performance.now();
  if (perSecond > 0) {
    // Paced by the clock: by tick k, (k + 1) × 50 ms × rate events in all, spread over the shards.
    const tickMs = 50;
    let sent = from;
    for (let tick = 0; sent < to; tick++) {
      const due = Math.min(to, from + Math.round(((tick + 1) * tickMs * perSecond) / 1000 / shards.length));
      await Promise.all(shards.map((s) => feed(s, sent, due - sent)));
      sent = due;
      const wait = t0 + (tick + 1) * tickMs - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  } else {
    for (let at = from; at < to; at += 1000) await Promise.all(shards.map((s) => feed(s, at, Math.min(1000, to - at))));
  }
}

/** Waits until each shard's outbox holds at most `left` entries (feed only: deletes them). */
async function persistedDownTo(left: number): Promise<void> {
  if (feedOnly) {
    await Promise.all(shards.map((s) => writer.get(s).client.del([writer.get(s).keys.outbox, writer.get(s).keys.outboxIndex])));
    return;
  }
  for (;;) {
    const lens = await Promise.all(shards.map((s) => writer.get(s).client.hLen(writer.get(s).keys.outbox)));
    if (lens.every((n) => n <= left)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function run(warmUpJobs: number): Promise<DriverDone> {
  const t0 = performance.now();
  await pace(warmUp, warmUp + perShard, rate);
  const feedSeconds = (performance.now() - t0) / 1000;
  await Promise.all(replicaSet.map((r) => r.relays?.close()));
  await persistedDownTo(0);
  return { type: 'done', events: perShard * shards.length, feedSeconds, jobs: jobs - warmUpJobs, lingerMs: config.relayLingerMs, envelopeMax: config.relayEnvelopeMax };
}

await pace(0, warmUp, rate > 0 ? rate : 2000);
await persistedDownTo(0);
const warmUpJobs = jobs;
process.once('message', (m: { type?: string }) => {
  if (m.type !== 'go') return;
  void run(warmUpJobs).then(
    async (done) => {
      process.send!(done);
      for (const r of replicaSet) await r.stores.close();
      process.disconnect!();
    },
    (err: unknown) => {
      process.stderr.write(`relay-driver: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
});
process.send!({ type: 'ready' });
