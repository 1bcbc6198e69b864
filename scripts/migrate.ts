/**
 * `npm run migrate`: creates any missing shard databases and applies sql/ to
 * every distinct Postgres database of the topology (TOPOLOGY, TOPOLOGY_FILE or
 * the default local topology; `.env` is read first).
 */
import 'dotenv/config';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTopology } from '@lb/common';
import { ensureDatabase, migrateTopology, redactUrl } from '@lb/common/infra';

const sqlDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'sql');

try {
  const topology = loadTopology();
  // Databases are not created by migrations: CREATE DATABASE cannot run in a
  // transaction, and the server's `postgres` database is the place for it.
  for (const url of new Set(topology.shards.map((s) => s.postgres))) await ensureDatabase(url);
  for (const r of await migrateTopology(topology, sqlDir)) {
    const what = r.applied.length > 0 ? `applied ${r.applied.join(', ')}` : 'up to date';
    console.log(`shard ${r.shardIds.join(', ')} (${redactUrl(r.postgres)}): ${what}`);
  }
} catch (e) {
  console.error(`migrate failed: ${(e as Error).message}`);
  process.exitCode = 1;
}
