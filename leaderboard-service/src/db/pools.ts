/**
 * One pg Pool per distinct Postgres URL of the topology (several shards may
 * share a database server or even a database).
 */
import pg from 'pg';
import type { Logger, ShardDef } from '@lb/common';

export class PgPools {
  private readonly byUrl = new Map<string, pg.Pool>();
  private readonly byShard = new Map<string, pg.Pool>();

  constructor(shards: readonly ShardDef[], poolSize: number, log: Logger) {
    for (const s of shards) {
      let pool = this.byUrl.get(s.postgres);
      if (!pool) {
        pool = new pg.Pool({
          connectionString: s.postgres,
          max: poolSize,
          connectionTimeoutMillis: 3000,
          idleTimeoutMillis: 30_000,
        });
        pool.on('error', (err) => log.warn('idle postgres client error', { shard: s.id, err: err.message }));
        this.byUrl.set(s.postgres, pool);
      }
      this.byShard.set(s.id, pool);
    }
  }

  /** The pool of a shard. */
  forShard(shardId: string): pg.Pool {
    const p = this.byShard.get(shardId);
    if (!p) throw new Error(`no postgres pool for shard ${shardId}`);
    return p;
  }

  /** Distinct pools with one shard id naming each (for health and fan-out lookups). */
  distinct(): { shardId: string; pool: pg.Pool }[] {
    const seen = new Set<pg.Pool>();
    const out: { shardId: string; pool: pg.Pool }[] = [];
    for (const [shardId, pool] of this.byShard) {
      if (seen.has(pool)) continue;
      seen.add(pool);
      out.push({ shardId, pool });
    }
    return out;
  }

  /** True when two shards share one Postgres database (one transaction can span them). */
  sameDatabase(a: string, b: string): boolean {
    return this.forShard(a) === this.forShard(b);
  }

  async close(): Promise<void> {
    await Promise.all([...this.byUrl.values()].map((p) => p.end()));
  }
}
