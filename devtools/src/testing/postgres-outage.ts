/**
 * A PRIVATE Postgres for tests that make Postgres unavailable (the shared
 * harness server must stay up for every other test file): the harness'
 * Redis shards, this server's databases lb_na, lb_eu, lb_asia, migrated
 * (which creates the non-superuser role the services connect as,
 * SERVICE_ROLE: a superuser would ignore role connection limits). Each outage is one of the ways a server that is
 * up, or going down, refuses sessions:
 *
 * - `refuseConnections`: ALTER DATABASE ... ALLOW_CONNECTIONS false on every
 *   database and pg_terminate_backend of the app's sessions (maintenance,
 *   restore): SQLSTATE 57P01 for the sessions, 55000 for new ones.
 * - `limitRole`: ALTER ROLE ... CONNECTION LIMIT 0 and the sessions
 *   terminated: 53300 too many connections.
 * - `smartShutdown`: SIGTERM with an admin session held open: the server
 *   stays in shutdown (57P03 "the database system is shutting down") until
 *   `restore` lets it finish and starts it again.
 * - `stopFast`: SIGINT, what `pg_ctl stop -m fast` sends: sessions end with
 *   57P01, then the port refuses (ECONNREFUSED); `restore` starts it again
 *   on the same port and data.
 */
import { mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { type Topology } from '@lb/common/contracts';
import { migrateTopology, SERVICE_ROLE } from '@lb/common/platform';
import { startPostgres, type PostgresProcess } from '../infra/postgres.js';
import { getInfra, TEST_SHARD_IDS } from './harness.js';

export type Outage = 'refuse-connections' | 'connection-limit' | 'smart-shutdown' | 'fast-stop';
export const OUTAGES: readonly Outage[] = ['refuse-connections', 'connection-limit', 'smart-shutdown', 'fast-stop'];

export interface OutagePostgres {
  /** The harness' Redis shards with this server's databases, as the owner (the services log in as SERVICE_ROLE). */
  readonly topology: Topology;
  /** Makes every project database unavailable in the given way. */
  start(outage: Outage): Promise<void>;
  /** Ends the outage: every database accepts sessions again. */
  restore(): Promise<void>;
  /** A query as the superuser on one of the databases (when no outage is on). */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(db: string, text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
  stop(): Promise<void>;
}

const APP_ROLE = SERVICE_ROLE;
const DATABASES = TEST_SHARD_IDS.map((id) => `lb_${id}`);

export async function startOutagePostgres(): Promise<OutagePostgres> {
  const infra = await getInfra();
  const dir = mkdtempSync(join(tmpdir(), 'lb-pg-outage-'));
  chmodSync(dir, 0o755);
  let server: PostgresProcess = await startPostgres({ dataDir: join(dir, 'pg'), fast: true });
  const port = server.port;
  try {
    for (const db of DATABASES) await server.ensureDatabase(db);
    const superTopology = topologyFor(infra.topology, (db) => server.urlFor(db));
    await migrateTopology(superTopology, join(infra.repoRoot, 'sql'));
  } catch (e) {
    await server.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  let current: Outage | undefined;
  /** The admin session held open through a smart shutdown (it keeps the server from finishing it). */
  let held: pg.Client | undefined;
  const terminateApp = `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '${APP_ROLE}'`;
  return {
    topology: topologyFor(infra.topology, (db) => server.urlFor(db)),
    async start(outage) {
      if (current) throw new Error(`outage ${current} is on already`);
      current = outage;
      const admin = server.urlFor('postgres');
      if (outage === 'refuse-connections') {
        await once(admin, DATABASES.map((db) => `ALTER DATABASE ${db} ALLOW_CONNECTIONS false;`).join('\n') + terminateApp);
      } else if (outage === 'connection-limit') {
        await once(admin, `ALTER ROLE ${APP_ROLE} CONNECTION LIMIT 0; ${terminateApp}`);
      } else if (outage === 'smart-shutdown') {
        held = new pg.Client({ connectionString: admin });
        held.on('error', () => undefined);
        await held.connect();
        process.kill(server.pid, 'SIGTERM');
        // New sessions are refused from now on (57P03); the held one still runs.
        for (;;) {
          const refused = await once(admin, 'SELECT 1').then(() => false, (e: { code?: string }) => e.code === '57P03');
          if (refused) break;
          await sleep(20);
        }
        await held.query(terminateApp);
      } else {
        await server.stop();
      }
    },
    async restore() {
      const outage = current;
      current = undefined;
      const admin = server.urlFor('postgres');
      if (outage === 'refuse-connections') {
        await once(admin, DATABASES.map((db) => `ALTER DATABASE ${db} ALLOW_CONNECTIONS true;`).join('\n'));
      } else if (outage === 'connection-limit') {
        await once(admin, `ALTER ROLE ${APP_ROLE} CONNECTION LIMIT -1`);
      } else if (outage === 'smart-shutdown' || outage === 'fast-stop') {
        if (held) {
          await held.end().catch(() => undefined);
          held = undefined;
          await server.stop(); // waits for the smart shutdown to finish
        }
        server = await startPostgres({ dataDir: join(dir, 'pg'), port, fast: true });
      }
    },
    async query<R extends pg.QueryResultRow>(db: string, text: string, values?: unknown[]) {
      const c = new pg.Client({ connectionString: server.urlFor(db) });
      await c.connect();
      try {
        return await c.query<R>(text, values);
      } finally {
        await c.end();
      }
    },
    async stop() {
      await held?.end().catch(() => undefined);
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function topologyFor(base: Topology, urlFor: (db: string) => string): Topology {
  return Object.freeze({
    shards: Object.freeze(base.shards.map((s) => Object.freeze({ ...s, postgres: urlFor(`lb_${s.id}`) }))),
    regions: Object.freeze({ ...base.regions }),
  });
}

async function once(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  c.on('error', () => undefined);
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end().catch(() => undefined);
  }
}
