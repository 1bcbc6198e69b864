/**
 * Row-level security of the tenant-owned tables (sql/008), seen from the
 * services' role lb_app on the harness's real Postgres: two projects' rows
 * in every table, with the same player and board ids in both.
 */
import { expect } from 'chai';
import pg from 'pg';
import { getInfra, uniqueId } from '@lb/devtools/testing';
import { createLogger, PgPools, SERVICE_ROLE } from '../src/platform/index.js';
import type { ProjectRef } from '../src/contracts/tenancy.js';
import type { ShardDef } from '../src/contracts/topology.js';

const TABLES = ['accounts', 'user_directory', 'boards', 'board_scores', 'board_score_events', 'period_closes', 'period_archive', 'webhook_deliveries'] as const;

/** One row of each table for `p`, every one naming its project explicitly. */
async function seed(owner: pg.Client, p: ProjectRef, user: string, board: string): Promise<void> {
  const tp = [p.tenant, p.project];
  await owner.query(`INSERT INTO accounts (tenant_id, project_id, user_id, name, region, password_hash) VALUES ($1, $2, $3, 'N', 'EU', 'h')`, [...tp, user]);
  await owner.query(`INSERT INTO user_directory (tenant_id, project_id, user_id, region, shard_id) VALUES ($1, $2, $3, 'EU', 'eu')`, [...tp, user]);
  await owner.query(
    `INSERT INTO boards (tenant_id, project_id, id, title, sort_order, operator, reset, tie_break, min_score, max_score, max_metadata_bytes, client_writes, allow_operator_override, webhook_secret)
     VALUES ($1, $2, $3, 'T', 'desc', 'best', 'none', 'shared', 0, 100, 0, true, false, 'secret')`,
    [...tp, board],
  );
  await owner.query(`INSERT INTO board_scores (tenant_id, project_id, board, period, user_id, name, region, score, version, updated_at) VALUES ($1, $2, $3, 'all', $4, 'N', 'EU', 1, 1, now())`, [...tp, board, user]);
  await owner.query(`INSERT INTO board_score_events (tenant_id, project_id, board, period, user_id, version, region, op, delta, score, ts) VALUES ($1, $2, $3, 'all', $4, 1, 'EU', 'set', 1, 1, now())`, [...tp, board, user]);
  await owner.query(`INSERT INTO period_closes (tenant_id, project_id, board, period, players) VALUES ($1, $2, $3, '2026-01-01', 1)`, [...tp, board]);
  await owner.query(
    `INSERT INTO period_archive (tenant_id, project_id, board, period, view, position, rank, user_id, name, score, stored, member) VALUES ($1, $2, $3, '2026-01-01', 'GLOBAL', 0, 1, $4, 'N', 1, '1', $4)`,
    [...tp, board, user],
  );
  await owner.query(`INSERT INTO webhook_deliveries (tenant_id, project_id, id, board, period, url, payload) VALUES ($1, $2, $3, $4, '2026-01-01', 'http://127.0.0.1:9/', '{}')`, [...tp, `${board}/2026-01-01`, board]);
}

/** The projects of the rows `client` sees in `table`, as "tenant/project" strings. */
async function visible(client: pg.ClientBase, table: string): Promise<string[]> {
  const r = await client.query<{ p: string }>(`SELECT tenant_id || '/' || project_id AS p FROM ${table}`);
  return r.rows.map((x) => x.p);
}

async function setScope(client: pg.ClientBase, p: ProjectRef): Promise<void> {
  await client.query("SELECT set_config('app.tenant_id', $1, true), set_config('app.project_id', $2, true)", [p.tenant, p.project]);
}

/** The shard's database URL with the services' role as its user. */
function asServiceRole(shard: ShardDef): string {
  const u = new URL(shard.postgres);
  u.username = SERVICE_ROLE;
  u.password = '';
  return u.toString();
}

describe('row-level security of the tenant-owned tables (real Postgres, as the services’ role)', function () {
  this.timeout(60_000);
  let shard: ShardDef;
  let owner: pg.Client;
  let app: pg.Client;
  const a: ProjectRef = { tenant: uniqueId('rls-a').toLowerCase(), project: 'live' };
  const b: ProjectRef = { tenant: uniqueId('rls-b').toLowerCase(), project: 'live' };
  const user = uniqueId('alice');
  const board = uniqueId('rls').toLowerCase();

  before(async () => {
    shard = (await getInfra()).topology.shards[0]!;
    owner = new pg.Client({ connectionString: shard.postgres });
    await owner.connect();
    // The same player id and board id in both projects: the keys hold the project.
    await seed(owner, a, user, board);
    await seed(owner, b, user, board);
    app = new pg.Client({ connectionString: asServiceRole(shard) });
    await app.connect();
  });

  after(async () => {
    await app?.end();
    await owner?.end();
  });

  it('when project A is set, then every tenant-owned table shows A’s rows and none of B’s', async () => {
    await app.query('BEGIN');
    try {
      await setScope(app, a);
      for (const t of TABLES) {
        const seen = await visible(app, t);
        expect(seen, t).to.have.length(1);
        expect(seen, t).to.deep.equal([`${a.tenant}/${a.project}`]);
      }
    } finally {
      await app.query('ROLLBACK');
    }
  });

  it('when nothing is set (or an empty project), then every table shows no row at all', async () => {
    for (const t of TABLES) expect(await visible(app, t), t).to.deep.equal([]);
    await app.query('BEGIN');
    try {
      await app.query("SELECT set_config('app.tenant_id', $1, true), set_config('app.project_id', '', true)", [a.tenant]);
      for (const t of TABLES) expect(await visible(app, t), t).to.deep.equal([]);
    } finally {
      await app.query('ROLLBACK');
    }
  });

  it('when project A is set, then writing a row of B is refused, and a row that names no project is A’s', async () => {
    await app.query('BEGIN');
    try {
      await setScope(app, a);
      const refused = await app
        .query(`INSERT INTO accounts (tenant_id, project_id, user_id, name, region, password_hash) VALUES ($1, $2, $3, 'N', 'EU', 'h')`, [b.tenant, b.project, uniqueId('x')])
        .then(
          () => undefined,
          (e: unknown) => e as { code?: string },
        );
      expect(refused?.code).to.equal('42501'); // new row violates row-level security policy
    } finally {
      await app.query('ROLLBACK');
    }
    await app.query('BEGIN');
    try {
      await setScope(app, a);
      const other = uniqueId('bob');
      await app.query(`INSERT INTO accounts (user_id, name, region, password_hash) VALUES ($1, 'N', 'EU', 'h')`, [other]);
      const r = await app.query('SELECT tenant_id, project_id FROM accounts WHERE user_id = $1', [other]);
      expect(r.rows).to.deep.equal([{ tenant_id: a.tenant, project_id: a.project }]);
      // Moving a row of A to B is refused too (WITH CHECK on UPDATE).
      const moved = await app.query('UPDATE accounts SET tenant_id = $1 WHERE user_id = $2', [b.tenant, other]).then(
        () => undefined,
        (e: unknown) => e as { code?: string },
      );
      expect(moved?.code).to.equal('42501');
    } finally {
      await app.query('ROLLBACK');
    }
  });

  it('when nothing is set, then an insert that names no project fails instead of landing in the default project (the owner’s too)', async () => {
    const insert = (c: pg.Client) =>
      c.query(`INSERT INTO accounts (user_id, name, region, password_hash) VALUES ($1, 'N', 'EU', 'h')`, [uniqueId('nobody')]).then(
        () => undefined,
        (e: unknown) => (e as { code?: string }).code,
      );
    expect(await insert(app)).to.equal('42501'); // the policy matches no project
    expect(await insert(owner)).to.equal('23502'); // the owner skips the policy, not the NOT NULL: tenant_id has no value
  });

  it('when a transaction set a project and ended, then the next transaction on the same connection sees nothing', async () => {
    await app.query('BEGIN');
    await setScope(app, b);
    expect(await visible(app, 'board_scores')).to.deep.equal([`${b.tenant}/${b.project}`]);
    await app.query('COMMIT');
    const r = await app.query<{ t: string; p: string }>("SELECT current_setting('app.tenant_id', true) AS t, current_setting('app.project_id', true) AS p");
    expect(r.rows[0]).to.deep.equal({ t: '', p: '' });
    for (const t of TABLES) expect(await visible(app, t), t).to.deep.equal([]);
  });

  it('when PgPools.inScope runs as the services’ role on one pooled connection, then each transaction sees only its own project', async () => {
    const pools = new PgPools([{ ...shard, postgres: asServiceRole(shard) }], { size: 1, servicePassword: undefined, applicationName: 'rls-test' }, createLogger('test', 'silent'));
    try {
      for (const p of [a, b, a]) {
        const seen = await pools.inScope(shard.id, p, (c) => visible(c, 'period_archive'));
        expect(seen).to.deep.equal([`${p.tenant}/${p.project}`]);
      }
      const none = await pools.run(shard.id, async (pool) => visible(pool as unknown as pg.ClientBase, 'period_archive'));
      expect(none).to.deep.equal([]);
    } finally {
      await pools.close();
    }
  });

  it('when the services’ role is examined, then it is no superuser, has no BYPASSRLS and owns no table; every table with a project has RLS enabled and forced', async () => {
    const role = await owner.query('SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1', [SERVICE_ROLE]);
    expect(role.rows).to.deep.equal([{ rolsuper: false, rolbypassrls: false }]);
    const owned = await owner.query("SELECT relname FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = $1) AND relkind IN ('r', 'v', 'p', 'S')", [SERVICE_ROLE]);
    expect(owned.rows).to.deep.equal([]);
    const tables = await owner.query<{ relname: string; relrowsecurity: boolean; relforcerowsecurity: boolean }>(
      `SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
       WHERE c.relkind = 'r' AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'project_id' AND NOT a.attisdropped)
       ORDER BY c.relname`,
    );
    expect(tables.rows.map((t) => t.relname)).to.include.members([...TABLES]);
    for (const t of tables.rows) expect(t, t.relname).to.include({ relrowsecurity: true, relforcerowsecurity: true });
  });

  it('when the catalog reads every project’s boards, then the definer function returns both projects’ definitions and no webhook secret', async () => {
    const r = await app.query('SELECT * FROM lb_all_boards() WHERE id = $1', [board]);
    expect(r.rows.map((x: { tenant_id: string }) => x.tenant_id).sort()).to.deep.equal([a.tenant, b.tenant].sort());
    expect(r.fields.map((f) => f.name)).not.to.include('webhook_secret');
    expect(await visible(app, 'boards')).to.deep.equal([]);
  });

  it('when the compatibility views of sql/007 are read, then they apply the reader’s row-level security and show only the default project', async () => {
    await owner.query(`INSERT INTO board_scores (tenant_id, project_id, board, period, user_id, name, region, score, version, updated_at) VALUES ($1, $2, 'main', 'all', $3, 'N', 'EU', 7, 1, now())`, [a.tenant, a.project, user]);
    await app.query('BEGIN');
    try {
      await setScope(app, a);
      expect((await app.query('SELECT * FROM leaderboard WHERE user_id = $1', [user])).rows).to.deep.equal([]);
    } finally {
      await app.query('ROLLBACK');
    }
    expect((await owner.query('SELECT * FROM leaderboard WHERE user_id = $1', [user])).rows).to.deep.equal([]);
    // Without a project the services' role sees nothing through the view either.
    expect((await app.query('SELECT count(*)::int AS n FROM leaderboard')).rows[0]).to.deep.equal({ n: 0 });
  });
});
