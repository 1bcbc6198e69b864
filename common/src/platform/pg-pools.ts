/**
 * One pg Pool per distinct Postgres URL of a set of shards (several shards
 * may share a database server or even a database). Used by every service
 * and tool that talks to Postgres; each keeps its SQL in its own `db/`
 * module. Every pool connects as the services' role {@link SERVICE_ROLE},
 * never as the topology URL's user (the owner, which runs the migrations):
 * row-level security holds for everything that goes through here.
 */
import pg from 'pg';
import { StoreUnavailable } from '../contracts/errors.js';
import { TENANCY_ID } from '../contracts/tenancy.js';
import type { Logger } from './logger.js';
import { secondsSince, type CallMetrics } from './metrics.js';
import type { ShardDef } from '../contracts/topology.js';

/**
 * The role the services connect as (created and granted by sql/008): it
 * owns no table and has no BYPASSRLS, so it sees only the rows of the
 * project its transaction names ({@link PgPools.inScope}).
 */
export const SERVICE_ROLE = 'lb_app';

/**
 * A shard's Postgres URL as the services' role: the topology URL with its
 * user replaced by {@link SERVICE_ROLE} and its password by `password`
 * (PG_SERVICE_PASSWORD), or none (trust or peer authentication, or libpq's
 * PGPASSWORD).
 */
export function serviceRoleUrl(url: string, password: string | undefined): string {
  const u = new URL(url);
  u.username = SERVICE_ROLE;
  u.password = password ?? '';
  return u.toString();
}

export interface PoolOptions {
  /** Connections per pool. */
  readonly size: number;
  /** The password of {@link SERVICE_ROLE} (PG_SERVICE_PASSWORD); undefined = none. */
  readonly servicePassword: string | undefined;
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

/** The rows a transaction of {@link PgPools.inScope} may see: one project's, or (no project) a tenant's control rows. */
export interface RowScope {
  readonly tenant: string;
  readonly project?: string | undefined;
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
          connectionString: serviceRoleUrl(s.postgres, opts.servicePassword),
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
   * Runs `fn` on a shard's pool (a query, or a transaction on a client of
   * it); a failure {@link isStoreUnavailable} classifies as the database
   * being unavailable becomes StoreUnavailable naming the shard (503
   * `unavailable` with Retry-After; the worker retries later). Other errors
   * (constraint violations, bugs...) pass through as real faults. `op`
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
      throw pgFailure(shardId, e);
    } finally {
      if (start !== undefined) this.metrics!.observe(shardId, op, secondsSince(start), failed);
    }
  }

  /**
   * Runs `fn` in one transaction on a client of a shard's pool that sees
   * only the rows of `scope` (row-level security, see sql/): a project's
   * rows, or with no project a tenant's own control rows. The scope is set
   * with `set_config(…, true)`, so it ends with the transaction and never
   * reaches the next user of the pooled connection. Failures are
   * classified as {@link run} does.
   */
  async inScope<T>(shardId: string, scope: RowScope, fn: (client: pg.PoolClient) => Promise<T>, op = 'query'): Promise<T> {
    if (!TENANCY_ID.test(scope.tenant) || (scope.project !== undefined && !TENANCY_ID.test(scope.project))) {
      throw new Error(`not a row scope: ${JSON.stringify(scope)}`);
    }
    return this.run(
      shardId,
      async (pool) => {
        const client = await pool.connect();
        let discard = false;
        // pg-pool listens for errors of idle clients only: a session ended
        // between our queries (pg_terminate_backend, a shutdown) must not
        // crash the process. The next query fails and is classified; the
        // client leaves the pool.
        const onError = (): void => {
          discard = true;
        };
        client.on('error', onError);
        try {
          await client.query('BEGIN');
          await client.query("SELECT set_config('app.tenant_id', $1, true), set_config('app.project_id', $2, true)", [scope.tenant, scope.project ?? '']);
          const r = await fn(client);
          await client.query('COMMIT');
          return r;
        } catch (e) {
          // A client whose ROLLBACK fails is in an unknown state: it leaves the pool.
          await client.query('ROLLBACK').catch(() => (discard = true));
          throw e;
        } finally {
          client.off('error', onError);
          client.release(discard);
        }
      },
      op,
    );
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

/** Socket-level failures of the connection to the server (Node's error codes). */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/**
 * SQLSTATE classes whose every code means "not now" rather than "not this":
 * - 08 connection exception: the connection could not be made or was lost.
 * - 53 insufficient resources: 53300 too_many_connections (max_connections
 *   or a role's / database's CONNECTION LIMIT reached), 53100 disk_full,
 *   53200 out_of_memory, 53400 configuration_limit_exceeded. The server is
 *   up but cannot take the call; it can later.
 */
const UNAVAILABLE_CLASSES = new Set(['08', '53']);

/**
 * Single SQLSTATEs outside those classes that mean the same:
 * - 57P01 admin_shutdown (fast shutdown, pg_terminate_backend), 57P02
 *   crash_shutdown (another backend crashed), 57P03 cannot_connect_now
 *   (starting up, in recovery, shutting down), 57P05 idle_session_timeout:
 *   the session was ended by the server, not refused for what it asked.
 * - 57014 query_canceled: statement_timeout or a cancel (an overloaded or
 *   locked database); the same call may succeed later.
 * - 55000 object_not_in_prerequisite_state: what a database with
 *   ALLOW_CONNECTIONS false answers a new session ("database ... is not
 *   currently accepting connections": maintenance, failover, restore). It is
 *   a generic code, but none of our statements can raise it otherwise
 *   (no currval, no replication or sequence-state calls).
 * - 55P03 lock_not_available: lock_timeout while maintenance holds a lock.
 * - 40001 serialization_failure, 40P01 deadlock_detected: the transaction
 *   was rolled back and the answer is to run it again.
 *
 * Left out on purpose, so that they stay loud 500s and dead letters: 57P04
 * database_dropped, 3D000 invalid_catalog_name (no such database), 28xxx
 * authentication failures, 42xxx syntax / undefined objects (a missing
 * migration), 22xxx / 23xxx data the server refuses, 58xxx / XX000 system
 * and internal errors. Each needs an operator, not a retry.
 */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '57P05', '57014', '55000', '55P03', '40001', '40P01']);

/**
 * node-postgres' own failures, which carry no code: the socket closed
 * ("Connection terminated unexpectedly", "... due to connection timeout"),
 * the pool's connectionTimeoutMillis, query_timeout, a client left broken by
 * an earlier error, and Node's connect error text (AggregateError of several
 * addresses has no code of its own).
 */
const DRIVER_MESSAGES = /Connection terminated|timeout exceeded when trying to connect|Query read timeout|not queryable|connect ECONNREFUSED/i;

/**
 * THE classification of Postgres failures, shared by every service: true
 * when `e` means the database is unavailable for now (down, refusing or
 * dropping sessions, out of connections, shutting down or starting up, a
 * timeout, a transaction to be retried), false for a real fault of the call
 * (to be answered 500 and logged, or dead-lettered). HTTP layers see it as
 * StoreUnavailable via {@link PgPools.run} / {@link pgFailure}; the worker
 * retries such batches without spending the job's attempts.
 */
export function isStoreUnavailable(e: unknown): boolean {
  if (e instanceof StoreUnavailable) return e.store === 'postgres';
  if (!(e instanceof Error)) return false;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (NETWORK_CODES.has(code)) return true;
    if (/^[0-9A-Z]{5}$/.test(code)) return UNAVAILABLE_CLASSES.has(code.slice(0, 2)) || UNAVAILABLE_SQLSTATES.has(code);
  }
  return DRIVER_MESSAGES.test(e.message);
}

/**
 * What a failed Postgres call of `shardId` is to be thrown as: StoreUnavailable
 * (with the pg error as its cause) when {@link isStoreUnavailable}, else the
 * error itself. For code that cannot go through {@link PgPools.run}.
 */
export function pgFailure(shardId: string, e: unknown): unknown {
  if (e instanceof StoreUnavailable || !isStoreUnavailable(e)) return e;
  return new StoreUnavailable('postgres', shardId, false, { cause: e });
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
