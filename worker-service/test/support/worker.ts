/**
 * Helpers for worker-service tests: a config on the harness' servers with its
 * own key prefix, score events, the producer side of a shard's queue (built
 * from the queue contract exactly as leaderboard-service builds it), and
 * direct reads of a shard's Postgres.
 */
import pg from 'pg';
import { Queue } from 'bullmq';
import {
  jobIdOf,
  queuePrefix,
  SCORE_JOB,
  SCORE_QUEUE,
  type ScoreEvent,
  type ShardDef,
  type Topology,
} from '@lb/common/contracts';
import { connectionFor, scoreJobOptions, topologyJson, type JobPolicy } from '@lb/common/platform';
import { getInfra, uniqueId } from '@lb/devtools/testing';
import { loadConfig, type WorkerConfig } from '../../src/config.js';

/** A KEY_PREFIX of its own (KEY_PREFIX allows 16 characters `[a-z][a-z0-9_-]`). */
export function uniquePrefix(): string {
  return `t${uniqueId('').replace(/[^a-z0-9]/gi, '').toLowerCase().slice(-12)}`;
}

/** Worker config on the harness topology (or `topology`), quick to flush and quiet. */
export async function testConfig(env: Record<string, string> = {}, topology?: Topology): Promise<WorkerConfig> {
  const infra = await getInfra();
  return loadConfig({
    TOPOLOGY: topologyJson(topology ?? infra.topology),
    KEY_PREFIX: uniquePrefix(),
    LOG_LEVEL: 'silent',
    BATCH_MAX_WAIT_MS: '20',
    PG_POOL_SIZE: '4',
    ...env,
  });
}

let seq = 0;

/** A valid event; `user_id` defaults to a fresh id, `score` to `10 * version`. */
export function scoreEvent(over: Partial<ScoreEvent> = {}): ScoreEvent {
  const version = over.version ?? 1;
  return {
    user_id: over.user_id ?? uniqueId('p'),
    name: `Player ${seq++}`,
    region: 'NA',
    op: 'update',
    delta: 1,
    score: 10 * version,
    version,
    ts: 1_700_000_000_000 + version * 1000,
    request_id: uniqueId('r'),
    ...over,
  };
}

/** The producer side of one shard's score queue. */
export class ShardQueue {
  readonly queue: Queue;

  constructor(
    readonly shard: ShardDef,
    keyPrefix: string,
    readonly policy: JobPolicy = { attempts: 3, backoffMs: 50 },
  ) {
    this.queue = new Queue(SCORE_QUEUE, { connection: connectionFor(shard.redis, false), prefix: queuePrefix(shard.id, keyPrefix) });
  }

  /** Enqueues events as the contract says: name SCORE_JOB, jobId `user#version`, scoreJobOptions. */
  async add(events: readonly unknown[], extra: Record<string, unknown> = {}): Promise<void> {
    for (let i = 0; i < events.length; i += 1000) {
      await this.queue.addBulk(
        events.slice(i, i + 1000).map((data) => ({
          name: SCORE_JOB,
          data: data as ScoreEvent,
          opts: { ...scoreJobOptions(this.policy), jobId: jobIdFor(data), ...extra },
        })),
      );
    }
  }

  counts(): Promise<Record<string, number>> {
    return this.queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized');
  }

  /** Deletes the queue's keys and disconnects. */
  async destroy(): Promise<void> {
    await this.queue.obliterate({ force: true }).catch(() => undefined);
    await this.queue.close();
  }
}

function jobIdFor(data: unknown): string {
  const e = data as Partial<ScoreEvent> | null;
  return e && typeof e.user_id === 'string' && typeof e.version === 'number' ? jobIdOf(e as ScoreEvent) : uniqueId('bad');
}

/** Polls `check` until it returns true; fails with `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 15_000, everyMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** True when no job waits, runs or is delayed (failed and completed jobs may remain). */
export async function idle(q: ShardQueue): Promise<boolean> {
  const c = await q.counts();
  return c.waiting! + c.active! + c.delayed! + c.prioritized! === 0;
}

export interface LeaderboardRow {
  user_id: string;
  name: string;
  region: string;
  score: number;
  version: number;
  updated_ms: number;
}

export interface EventRow {
  user_id: string;
  version: number;
  score: number;
  op: string;
  ts_ms: number;
}

/** Direct reads of the shards' Postgres databases, one small pool per database. */
export class ShardDb {
  private readonly pools = new Map<string, pg.Pool>();

  pool(shard: ShardDef): pg.Pool {
    let p = this.pools.get(shard.postgres);
    if (!p) {
      p = new pg.Pool({ connectionString: shard.postgres, max: 2 });
      p.on('error', () => undefined);
      this.pools.set(shard.postgres, p);
    }
    return p;
  }

  async leaderboard(shard: ShardDef, userIds: readonly string[]): Promise<Map<string, LeaderboardRow>> {
    const r = await this.pool(shard).query(
      `SELECT user_id, name, region, score::float8 AS score, version::float8 AS version,
              (extract(epoch from updated_at) * 1000)::float8 AS updated_ms
         FROM leaderboard WHERE user_id = ANY($1::text[])`,
      [userIds],
    );
    return new Map(r.rows.map((row: LeaderboardRow) => [row.user_id, { ...row, updated_ms: Math.round(row.updated_ms) }]));
  }

  async events(shard: ShardDef, userIds: readonly string[]): Promise<EventRow[]> {
    const r = await this.pool(shard).query(
      `SELECT user_id, version::float8 AS version, score::float8 AS score, op,
              (extract(epoch from ts) * 1000)::float8 AS ts_ms
         FROM score_events WHERE user_id = ANY($1::text[]) ORDER BY user_id, version`,
      [userIds],
    );
    return r.rows.map((row: EventRow) => ({ ...row, ts_ms: Math.round(row.ts_ms) }));
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.end()));
    this.pools.clear();
  }
}
