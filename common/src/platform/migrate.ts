/**
 * A deliberately small SQL migrator: numbered `NNN_name.sql` files applied in
 * numeric order, each in its own transaction, recorded in `schema_migrations`.
 *
 * Migrations are forward-only and must not be edited or renamed once applied
 * anywhere (the file stem is the recorded version). Files must not contain
 * their own BEGIN/COMMIT, and statements that cannot run inside a transaction
 * block (e.g. CREATE INDEX CONCURRENTLY) are not supported.
 *
 * Production code: docker-compose's one-shot `migrate` service runs it
 * (migrate-cli.ts, compiled), as do `npm run migrate`, `npm start` and the
 * test harness.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pg from 'pg';
import type { Topology } from '../contracts/topology.js';

/** `001_create_scores.sql` → number 1, version `001_create_scores`. */
const MIGRATION_FILE = /^(\d+)_([A-Za-z0-9_.-]+)\.sql$/;

/**
 * Arbitrary constant identifying "the migrator" among advisory locks.
 * Advisory locks are scoped to the current database, so migrators of
 * different databases on one server do not wait for each other.
 */
const MIGRATION_LOCK_KEY = 0x1b_5c_4e_a1;

/** One migration file on disk. */
export interface MigrationFile {
  /** Numeric prefix, which orders the files. */
  readonly number: number;
  /** File name without `.sql`; recorded in `schema_migrations.version`. */
  readonly version: string;
  readonly path: string;
}

/**
 * Lists the migrations in `sqlDir`, sorted by numeric prefix. Other files are
 * ignored; two files sharing a number, or a missing directory, are errors.
 */
export function listMigrations(sqlDir: string): MigrationFile[] {
  const dir = resolve(sqlDir);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    throw new Error(`cannot read migrations directory ${dir}: ${(e as Error).message}`);
  }
  const files: MigrationFile[] = [];
  for (const name of names) {
    const m = MIGRATION_FILE.exec(name);
    if (!m) continue;
    files.push({ number: Number(m[1]), version: name.slice(0, -'.sql'.length), path: join(dir, name) });
  }
  files.sort((a, b) => a.number - b.number);
  for (let i = 1; i < files.length; i++) {
    if (files[i]!.number === files[i - 1]!.number) {
      throw new Error(`migrations ${files[i - 1]!.version} and ${files[i]!.version} share number ${files[i]!.number}`);
    }
  }
  return files;
}

/**
 * Applies the not-yet-applied migrations of `sqlDir` to the database at
 * `pgUrl`, in numeric order, each in its own transaction together with its
 * `schema_migrations` row (so a failed file leaves no trace and stops the
 * run). A session advisory lock serialises concurrent migrators of the same
 * database: the second one waits, then finds everything applied.
 *
 * @returns the versions (file names without `.sql`) applied by this call.
 */
export async function applyMigrations(pgUrl: string, sqlDir: string): Promise<string[]> {
  const files = listMigrations(sqlDir);
  const client = new pg.Client({ connectionString: pgUrl, connectionTimeoutMillis: 10_000 });
  // Errors surface through the awaited queries; the event would otherwise crash the process.
  client.on('error', () => undefined);
  const where = redactUrl(pgUrl);
  try {
    await client.connect();
  } catch (e) {
    throw new Error(`migrate ${where}: cannot connect: ${(e as Error).message}`, { cause: e });
  }
  const applied: string[] = [];
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    // Created under the lock, so concurrent first runs cannot race on it.
    await client.query(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
         version text PRIMARY KEY,
         applied_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
    const done = new Set(
      (await client.query<{ version: string }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version),
    );
    for (const file of files) {
      if (done.has(file.version)) continue;
      const sql = readFileSync(file.path, 'utf8');
      try {
        await client.query('BEGIN');
        // No parameters: pg uses the simple query protocol, which runs multi-statement files.
        await client.query(sql);
        await client.query('INSERT INTO schema_migrations (version) VALUES ($1)', [file.version]);
        await client.query('COMMIT');
      } catch (e) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw new Error(`migrate ${where}: ${file.version} failed${describePosition(sql, e)}: ${(e as Error).message}`, {
          cause: e,
        });
      }
      applied.push(file.version);
    }
    return applied;
  } finally {
    // Ending the session releases the advisory lock even if unlocking fails.
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    await client.end().catch(() => undefined);
  }
}

/** " at line N" from a Postgres error's 1-based character position, if it has one. */
function describePosition(sql: string, e: unknown): string {
  const pos = Number((e as { position?: string }).position);
  if (!Number.isInteger(pos) || pos < 1) return '';
  return ` at line ${sql.slice(0, pos - 1).split('\n').length}`;
}

/** What {@link migrateTopology} did for one distinct database. */
export interface DatabaseMigrationResult {
  /** The database URL, as written in the topology. */
  readonly postgres: string;
  /** Shards whose data lives in this database. */
  readonly shardIds: readonly string[];
  /** Versions applied by this call (empty when it was up to date). */
  readonly applied: readonly string[];
}

/**
 * Applies `sqlDir` to every distinct Postgres database of the topology (shards
 * may share one), one database after another so a failure names exactly one.
 * The databases must exist (see `ensureDatabase`).
 */
export async function migrateTopology(topology: Topology, sqlDir: string): Promise<DatabaseMigrationResult[]> {
  const byUrl = new Map<string, string[]>();
  for (const shard of topology.shards) {
    const ids = byUrl.get(shard.postgres) ?? [];
    ids.push(shard.id);
    byUrl.set(shard.postgres, ids);
  }
  const results: DatabaseMigrationResult[] = [];
  for (const [postgres, shardIds] of byUrl) {
    results.push({ postgres, shardIds, applied: await applyMigrations(postgres, sqlDir) });
  }
  return results;
}

/**
 * Creates the database named in `pgUrl` if it does not exist, connecting to
 * the `postgres` maintenance database of the same server (same credentials).
 * CREATE DATABASE has no IF NOT EXISTS, so we check pg_database first and
 * tolerate losing a race to a concurrent creator (42P04, or 23505 when both
 * reach the catalog insert).
 */
export async function ensureDatabase(pgUrl: string): Promise<void> {
  const target = new URL(pgUrl);
  const db = decodeURIComponent(target.pathname.replace(/^\//, ''));
  if (!db) throw new Error(`ensureDatabase: ${redactUrl(pgUrl)} names no database`);
  const admin = new URL(pgUrl);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 10_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [db]);
    if (exists.rowCount) return;
    try {
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(db)}`);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code !== '42P04' && code !== '23505') throw e;
    }
  } catch (e) {
    throw new Error(`ensureDatabase ${redactUrl(pgUrl)}: ${(e as Error).message}`, { cause: e });
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Sets the password the services' role lb_app (sql/008) logs in with, on
 * the server of `pgUrl` (roles are per server), connected as the owner.
 * ALTER ROLE takes no parameters, so the password travels as one (a
 * transaction-local setting) and is quoted by the server (format %L).
 */
export async function setServiceRolePassword(pgUrl: string, password: string): Promise<void> {
  const client = new pg.Client({ connectionString: pgUrl, connectionTimeoutMillis: 10_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('BEGIN');
    await client.query("SELECT set_config('lb.service_password', $1, true)", [password]);
    await client.query(`DO $$ BEGIN EXECUTE format('ALTER ROLE lb_app PASSWORD %L', current_setting('lb.service_password')); END $$`);
    await client.query('COMMIT');
  } catch (e) {
    throw new Error(`set the password of lb_app on ${redactUrl(pgUrl)}: ${(e as Error).message}`, { cause: e });
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A Postgres URL with any password replaced by `***`, for logs and errors. */
export function redactUrl(pgUrl: string): string {
  try {
    const u = new URL(pgUrl);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}
