/**
 * The test infrastructure itself: shared servers from the harness, plus the
 * migrator's ordering, atomicity and concurrency guarantees on scratch
 * databases and scratch migration directories.
 */
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pingRedis, redisCommand } from '@lb/devtools/infra';
import { getInfra, uniqueId, type Infra } from '@lb/devtools/testing';
import { applyMigrations, ensureDatabase, listMigrations } from '../src/platform/migrate.js';
import { validateTopology } from '../src/platform/topology.js';

async function query<R extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

describe('test infrastructure', function () {
  let infra: Infra;

  before(async function () {
    // First use starts the servers (initdb included), which can be slow on CI.
    this.timeout(180_000);
    infra = await getInfra();
  });

  describe('harness', () => {
    it('when the harness is up, then each shard Redis answers PING', async () => {
      expect(infra.redis).to.have.length(3);
      for (const r of infra.redis) {
        expect(await pingRedis(r.port), r.url).to.equal(true);
        expect(r.url).to.match(/^redis:\/\/127\.0\.0\.1:\d+$/);
      }
      expect(new Set(infra.redis.map((r) => r.port)).size).to.equal(3);
    });

    it('when the harness is up, then Redis listens on 127.0.0.1 only and keeps no RDB or AOF', async () => {
      for (const r of infra.redis) {
        const get = (param: string) => redisCommand(r.port, ['CONFIG', 'GET', param], 1000);
        expect(await get('save')).to.deep.equal(['save', '']);
        expect(await get('appendonly')).to.deep.equal(['appendonly', 'no']);
        expect(await get('bind')).to.deep.equal(['bind', '127.0.0.1']);
        expect(await get('protected-mode')).to.deep.equal(['protected-mode', 'yes']);
      }
    });

    it('when the harness is up, then the topology maps NA, EU and ASIA to their own shards', () => {
      expect(infra.topology.regions).to.deep.equal({ NA: 'na', EU: 'eu', ASIA: 'asia' });
      expect(infra.topology.shards.map((s) => s.id)).to.deep.equal(['na', 'eu', 'asia']);
      expect(infra.topology.shards.map((s) => s.redis)).to.deep.equal(infra.redis.map((r) => ({ kind: 'server', url: r.url })));
      expect(validateTopology(JSON.parse(infra.env().TOPOLOGY!))).to.deep.equal(infra.topology);
      expect(infra.env({ EXTRA: '1' }).EXTRA).to.equal('1');
    });

    it('when the harness is up, then Postgres has lb_na, lb_eu and lb_asia with schema_migrations', async () => {
      const dbs = await query<{ datname: string }>(
        infra.postgres.urlFor('postgres'),
        "SELECT datname FROM pg_database WHERE datname LIKE 'lb\\_%' ORDER BY datname",
      );
      expect(dbs.map((d) => d.datname)).to.include.members(['lb_asia', 'lb_eu', 'lb_na']);
      const expected = listMigrations(join(infra.repoRoot, 'sql')).map((m) => m.version);
      for (const shard of infra.topology.shards) {
        const rows = await query<{ version: string }>(shard.postgres, 'SELECT version FROM schema_migrations ORDER BY version');
        expect(rows.map((r) => r.version), shard.id).to.deep.equal(expected);
      }
    });

    it('when migrations are applied a second time, then nothing is applied', async () => {
      for (const shard of infra.topology.shards) {
        expect(await applyMigrations(shard.postgres, join(infra.repoRoot, 'sql')), shard.id).to.deep.equal([]);
      }
    });

    it('when uniqueId is called repeatedly, then ids are distinct, short and safe', () => {
      const ids = Array.from({ length: 1000 }, () => uniqueId('a prefix/with spaces and a very long tail indeed'));
      expect(new Set(ids).size).to.equal(ids.length);
      for (const id of ids) {
        expect(id.length).to.be.at.most(40);
        expect(id).to.match(/^[A-Za-z0-9_.-]+$/);
      }
      expect(uniqueId('user')).to.match(/^user-/);
    });
  });

  describe('migrator', () => {
    let sqlDir: string;

    beforeEach(() => {
      sqlDir = mkdtempSync(join(tmpdir(), 'lb-migrations-'));
    });

    afterEach(() => {
      rmSync(sqlDir, { recursive: true, force: true });
    });

    async function freshDatabase(): Promise<string> {
      const url = infra.postgres.urlFor(uniqueId('mig').toLowerCase().replace(/[^a-z0-9_]/g, '_'));
      await ensureDatabase(url);
      return url;
    }

    it('when files are numbered 2, 10 and 1, then they are applied in numeric order', async () => {
      const url = await freshDatabase();
      writeFileSync(join(sqlDir, '10_third.sql'), "INSERT INTO log VALUES ('third');");
      writeFileSync(join(sqlDir, '2_second.sql'), "INSERT INTO log VALUES ('second');");
      writeFileSync(join(sqlDir, '001_first.sql'), 'CREATE TABLE log (what text);\n-- comment\n');
      writeFileSync(join(sqlDir, 'README.md'), 'not a migration');
      mkdirSync(join(sqlDir, 'drafts'));
      expect(await applyMigrations(url, sqlDir)).to.deep.equal(['001_first', '2_second', '10_third']);
      const rows = await query<{ what: string }>(url, 'SELECT what FROM log');
      expect(rows.map((r) => r.what)).to.deep.equal(['second', 'third']);
      expect(await applyMigrations(url, sqlDir)).to.deep.equal([]);
    });

    it('when a migration fails, then it is rolled back, not recorded, and later files are not applied', async () => {
      const url = await freshDatabase();
      writeFileSync(join(sqlDir, '001_ok.sql'), 'CREATE TABLE a (x int);');
      writeFileSync(join(sqlDir, '002_bad.sql'), 'CREATE TABLE b (x int);\nSELECT * FROM no_such_table;');
      writeFileSync(join(sqlDir, '003_later.sql'), 'CREATE TABLE c (x int);');
      let error: Error | undefined;
      await applyMigrations(url, sqlDir).catch((e: Error) => (error = e));
      expect(error?.message).to.match(/002_bad failed at line 2: .*no_such_table/);
      const tables = await query<{ relname: string }>(
        url,
        "SELECT relname FROM pg_class WHERE relname IN ('a', 'b', 'c') ORDER BY relname",
      );
      expect(tables.map((t) => t.relname)).to.deep.equal(['a']);
      const versions = await query<{ version: string }>(url, 'SELECT version FROM schema_migrations');
      expect(versions.map((v) => v.version)).to.deep.equal(['001_ok']);
    });

    it('when several migrators run concurrently, then each migration is applied exactly once', async () => {
      const url = await freshDatabase();
      writeFileSync(join(sqlDir, '001_t.sql'), 'CREATE TABLE t (x int); SELECT pg_sleep(0.2);');
      writeFileSync(join(sqlDir, '002_u.sql'), 'INSERT INTO t VALUES (1);');
      const results = await Promise.all([1, 2, 3, 4].map(() => applyMigrations(url, sqlDir)));
      expect(results.flat().sort()).to.deep.equal(['001_t', '002_u']);
      expect(await query(url, 'SELECT x FROM t')).to.have.length(1);
    });

    it('when two files share a number, then nothing is applied and the error names both', async () => {
      const url = await freshDatabase();
      writeFileSync(join(sqlDir, '001_a.sql'), 'SELECT 1;');
      writeFileSync(join(sqlDir, '1_b.sql'), 'SELECT 1;');
      let error: Error | undefined;
      await applyMigrations(url, sqlDir).catch((e: Error) => (error = e));
      expect(error?.message).to.match(/001_a and 1_b share number 1/);
    });

    it('when a database is ensured concurrently, then it exists once and no call fails', async () => {
      const url = infra.postgres.urlFor(uniqueId('db').toLowerCase().replace(/[^a-z0-9_]/g, '_'));
      await Promise.all([1, 2, 3, 4, 5].map(() => ensureDatabase(url)));
      const name = decodeURIComponent(new URL(url).pathname.slice(1));
      const rows = await query(infra.postgres.urlFor('postgres'), 'SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      expect(rows).to.have.length(1);
    });
  });
});
