/**
 * The usage rollup (issue 21): every shard's hourly usage counters
 * (@lb/common keys.ts UsageKeys, written by the services: the write script
 * counts writes, the replicas flush reads, streams, events and admin
 * requests) copied into the control plane's usage_hourly
 * (sql/011_usage.sql), per tenant, project, kind, hour and shard; days are
 * the sum of their hours (the usage_daily view).
 *
 * A BullMQ job scheduler on the control shard's Redis (`usage` queue, one
 * scheduler id) runs it every USAGE_ROLLUP_EVERY_MS, on whichever worker
 * takes the job. Idempotent: counters only grow, and a row is written as
 * GREATEST(what it holds, the counter read), so a rollup run twice, or by
 * two workers at once, counts once. An hour is marked closed once it ended
 * more than USAGE_ROLLUP_GRACE_MS ago (late flushes of a replica's last
 * second have landed) and was read after that; a closed hour is not read
 * again, and leaves the shard's index once its counters expire.
 */
import { Queue, Worker } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import { HOUR_MS, hourStartMs, parseUsageField, queuePrefix, shardKeys, TENANCY_ID, type Topology } from '@lb/common/contracts';
import { connectionFor, type Logger, type PgPools } from '@lb/common/platform';

export const USAGE_QUEUE = 'usage';
const SCHEDULER_ID = 'usage-rollup';

export interface UsageRollupSettings {
  keyPrefix: string;
  /** USAGE_ROLLUP_EVERY_MS */
  everyMs: number;
  /** USAGE_ROLLUP_GRACE_MS */
  graceMs: number;
}

export class UsageRollup {
  private readonly queue: Queue;
  private worker: Worker | undefined;
  private readonly redis: { shard: string; client: Redis }[];
  private readonly control: string;

  constructor(
    private readonly deps: { topology: Topology; pools: PgPools; log: Logger },
    private readonly s: UsageRollupSettings,
  ) {
    const control = deps.topology.shards[0]!;
    this.control = control.id;
    this.queue = new Queue(USAGE_QUEUE, { connection: connectionFor(control.redis, false), prefix: queuePrefix(control.id, s.keyPrefix) });
    this.redis = deps.topology.shards.map((sh) => ({ shard: sh.id, client: new Redis(connectionFor(sh.redis, false) as RedisOptions) }));
  }

  async start(): Promise<void> {
    const control = this.deps.topology.shards[0]!;
    await this.queue.upsertJobScheduler(SCHEDULER_ID, { every: this.s.everyMs }, { name: 'rollup', opts: { removeOnComplete: true, removeOnFail: 100 } });
    this.worker = new Worker(USAGE_QUEUE, () => this.run(), { connection: connectionFor(control.redis, true), prefix: queuePrefix(control.id, this.s.keyPrefix), concurrency: 1 });
    this.worker.on('failed', (_job, err) => this.deps.log.warn('usage rollup failed; the next run reads the same counters', { err }));
  }

  /** One rollup of every shard's counters; answers how many rows it wrote. */
  async run(now = Date.now()): Promise<number> {
    let written = 0;
    for (const { shard, client } of this.redis) {
      const keys = shardKeys(shard, this.s.keyPrefix).usage;
      const hours: string[] = await client.zrange(keys.hours, '0', '-1');
      for (const hour of hours) {
        const start = hourStartMs(hour);
        const closing = start + HOUR_MS + this.s.graceMs < now;
        const doneKey = `${keys.tenants(hour)}:rolled`;
        if (await client.exists(doneKey)) {
          // Closed and read: gone from the index once its counters have expired.
          if (!(await client.exists(keys.tenants(hour)))) await client.zrem(keys.hours, hour);
          continue;
        }
        const tenants = (await client.smembers(keys.tenants(hour))).filter((t) => TENANCY_ID.test(t));
        for (const tenant of tenants) written += await this.upsert(tenant, shard, start, closing, await client.hgetall(keys.counts(hour, tenant)));
        if (closing) {
          const ttl = await client.ttl(keys.tenants(hour));
          await client.set(doneKey, '1', 'EX', Math.max(60, ttl));
        }
      }
    }
    return written;
  }

  private async upsert(tenant: string, shard: string, hourMs: number, closed: boolean, counts: Record<string, string>): Promise<number> {
    const projects: string[] = [];
    const kinds: string[] = [];
    const values: string[] = [];
    for (const [field, n] of Object.entries(counts)) {
      const f = parseUsageField(field);
      if (!f) continue;
      projects.push(f.project);
      kinds.push(f.kind);
      values.push(String(Number(n)));
    }
    if (projects.length === 0) return 0;
    await this.deps.pools.inScope(
      this.control,
      { tenant },
      (c) =>
        c.query(
          `INSERT INTO usage_hourly (tenant_id, project_id, kind, hour, shard, count, closed)
           SELECT $1, p, k, $2, $3, n, $4 FROM unnest($5::text[], $6::text[], $7::bigint[]) AS u(p, k, n)
           ON CONFLICT (tenant_id, hour, project_id, kind, shard) DO UPDATE
             SET count = GREATEST(usage_hourly.count, EXCLUDED.count), closed = usage_hourly.closed OR EXCLUDED.closed, updated_at = now()`,
          [tenant, new Date(hourMs), shard, closed, projects, kinds, values],
        ),
      'usage.rollup',
    );
    return projects.length;
  }

  async close(): Promise<void> {
    await this.worker?.close();
    await this.queue.close();
    await Promise.all(this.redis.map((r) => r.client.quit().catch(() => undefined)));
  }
}
