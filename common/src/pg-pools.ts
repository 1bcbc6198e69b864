/**
 * One pg Pool per distinct Postgres URL of a set of shards (several shards
 * may share a database server or even a database). Used by every service
 * that talks to Postgres; each keeps its SQL in its own `db/` module.
 */
import pg from 'pg';
import { StoreUnavailable } from './errors.js';
import type { Logger } from './logger.js';
import { secondsSince, type CallMetrics } from './metrics.js';
import type { ShardDef } from './topology.js';

export interface PoolOptions {
  /** Connections per pool. */
  readonly size: number;
  /** Server-side statement_timeout, ms (undefined = the server's). */
  readonly statementTimeoutMs?: number;
  /**
   * Client-side bound on one query, ms (undefined = none): a server that
   * stopped answering without closing its sockets fails the query instead
   * of holding the request forever.
   */
  readonly queryTimeoutMs?: number;
  /** Shown in pg_stat_activity. */
  readonly applicationName: string;
  /** Latency and errors of every {@link PgPools.run}, by shard and operation. */
  readonly metrics?: CallMetrics | undefined;
}

export class PgPools {
  private readonly byUrl = new Map<string, pg.Pool>();
  private readonly byShard = new Map<string, pg.Pool>();
  private readonly metrics: CallMetrics | undefined;

  constructor(shards: readonly ShardDef[], opts: PoolOptions, log: Logger) {
    this.metrics = opts.metrics;
    for (const s of shards) {
      let pool = this.byUrl.get(s.postgres);
      if (!pool) {
        pool = new pg.Pool({
          connectionString: s.postgres,
          max: opts.size,
          connectionTimeoutMillis: 5000,
          idleTimeoutMillis: 30_000,
          ...(opts.statementTimeoutMs === undefined ? {} : { statement_timeout: opts.statementTimeoutMs }),
          ...(opts.queryTimeoutMs === undefined ? {} : { query_timeout: opts.queryTimeoutMs }),
          application_name: opts.applicationName,
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

  /**
   * Runs `fn` on a shard's pool; a Postgres that cannot be reached (refused,
   * reset, shutting down, timed out) becomes StoreUnavailable naming the
   * shard. Other errors (constraint violations...) pass through. `op`
   * names the call in `lb_pg_query_duration_seconds`.
   */
  async run<T>(shardId: string, fn: (pool: pg.Pool) => Promise<T>, op = 'query'): Promise<T> {
    const start = this.metrics && process.hrtime.bigint();
    let failed = true;
    try {
      const r = await fn(this.forShard(shardId));
      failed = false;
      return r;
    } catch (e) {
      if (isConnectionFailure(e)) throw new StoreUnavailable('postgres', shardId, false, { cause: e });
      throw e;
    } finally {
      if (start !== undefined) this.metrics!.observe(shardId, op, secondsSince(start), failed);
    }
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

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
/** SQLSTATEs of a server that is going away or cannot take the call (beside class 08, connection exceptions). */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300', '57014']);

/**
 * True when a pg error means the database could not be reached or let the
 * call time out, rather than that the query itself was refused.
 */
export function isConnectionFailure(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (NETWORK_CODES.has(code) || UNAVAILABLE_SQLSTATES.has(code) || /^08[0-9A-Z]{3}$/.test(code)) return true;
  }
  // node-postgres' own connection errors carry no code.
  return /Connection terminated|timeout exceeded when trying to connect|Query read timeout|not queryable|connect ECONNREFUSED/i.test(e.message);
}

/** Runs a health probe with a deadline: 'ok', or 'error: <why>'. */
export async function probe(fn: () => Promise<unknown>, timeoutMs = 1500): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      fn(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), timeoutMs);
      }),
    ]);
    return 'ok';
  } catch (e) {
    return `error: ${(e as Error).message}`;
  } finally {
    clearTimeout(timer);
  }
}
