/**
 * The migrations command: creates any missing shard databases and applies
 * sql/ to every distinct Postgres database of the topology (TOPOLOGY,
 * TOPOLOGY_FILE or the default local topology; `.env` is read first).
 *
 * Production runs it compiled (`node common/dist/migrate-cli.js`, the
 * docker-compose `migrate` one-shot); `npm run migrate` runs it from source
 * through scripts/migrate.ts.
 */
import 'dotenv/config';
import { fileURLToPath } from 'node:url';
import { ensureDatabase, migrateTopology, redactUrl, setServiceRolePassword } from './platform/migrate.js';
import { PG_SERVICE_PASSWORD } from './platform/settings.js';
import { loadTopology } from './platform/topology.js';

// Two levels up from src/ and from dist/ alike: the repository root (the
// image's /app), which holds sql/.
const sqlDir = fileURLToPath(new URL('../../sql/', import.meta.url));

try {
  const topology = loadTopology();
  const servicePassword = PG_SERVICE_PASSWORD.read(process.env);
  // Databases are not created by migrations: CREATE DATABASE cannot run in a
  // transaction, and the server's `postgres` database is the place for it.
  for (const url of new Set(topology.shards.map((s) => s.postgres))) await ensureDatabase(url);
  for (const r of await migrateTopology(topology, sqlDir)) {
    const what = r.applied.length > 0 ? `applied ${r.applied.join(', ')}` : 'up to date';
    console.log(`shard ${r.shardIds.join(', ')} (${redactUrl(r.postgres)}): ${what}`);
  }
  // The services' role (sql/008) logs in with PG_SERVICE_PASSWORD, when the servers ask for one.
  if (servicePassword !== undefined) {
    for (const url of new Set(topology.shards.map((s) => s.postgres))) await setServiceRolePassword(url, servicePassword);
  }
} catch (e) {
  console.error(`migrate failed: ${(e as Error).message}`);
  process.exitCode = 1;
}
