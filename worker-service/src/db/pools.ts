/**
 * One pg Pool per distinct Postgres URL of the consumed shards (several shards
 * may share a database).
 */
import pg from 'pg';
import type { Logger, ShardDef } from '@lb/common';

export interface PoolOptions {
  /** Connections per pool. */
  readonly size: number;
  /** Server-side statement_timeout, ms. */
  readonly statementTimeoutMs: number;
}

export class PgPools {
  private readonly byUrl = new Map<string, pg.Pool>();
  private readonly byShard = new Map<string, pg.Pool>();

  constructor(shards: readonly ShardDef[], opts: PoolOptions, log: Logger) {
    for (const s of shards) {
      let pool = this.byUrl.get(s.postgres);
      if (!pool) {
        pool = new pg.Pool({
          connectionString: s.postgres,
          max: opts.size,
          connectionTimeoutMillis: 5000,
          idleTimeoutMillis: 30_000,
          statement_timeout: opts.statementTimeoutMs,
          application_name: 'worker-service',
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

  async close(): Promise<void> {
    await Promise.all([...this.byUrl.values()].map((p) => p.end()));
  }
}
