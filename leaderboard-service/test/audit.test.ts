/**
 * The audit log (issue 21): every administrative action of the admin API
 * and the admin CLI appended with its key (id and name, never the secret),
 * tenant, project, target, before/after and request id; a tenant's admins
 * read their tenant's entries only, the platform every tenant's; paging and
 * the action filter; quota events recorded once; and the services' role
 * may insert and read the table but never change or delete a row.
 */
import { expect } from 'chai';
import pg from 'pg';
import { uniqueId } from '@lb/devtools/testing';
import { runAdmin } from '../src/admin/cli.js';
import { AuditRepo, quotaTarget, type AuditRecord } from '../src/db/audit-repo.js';
import { ApiKeysRepo } from '../src/db/api-keys-repo.js';
import { Client, startService, type Reply, type TestService } from './support/service.js';
import { topologyJson } from '@lb/common/platform';

const tid = (p: string) => uniqueId(p).toLowerCase().replace(/[^a-z0-9_-]/g, '');

describe('audit log', function () {
  this.timeout(60_000);
  let svc: TestService;
  let platform: { id: string; name: string; key: string };
  let control: string;
  let audit: AuditRepo;

  before(async () => {
    svc = await startService();
    control = svc.deps.router.shards[0]!.id;
    platform = await new ApiKeysRepo(svc.deps.pools, control).create('audit tests');
    audit = new AuditRepo(svc.deps.pools, control);
  });
  after(async () => svc?.stop());

  const call = (method: string, path: string, key: string | null, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> =>
    new Client(svc.url).request(method, path, { ...(body !== undefined && { body }), headers: { ...headers, ...(key === null ? {} : { 'x-api-key': key }) } });

  /** A tenant's rows as the services' role sees them in its scope, oldest first. */
  const rowsOf = async (tenant: string): Promise<Record<string, unknown>[]> =>
    (await svc.deps.pools.inScope(control, { tenant }, (c) => c.query('SELECT * FROM audit_log WHERE tenant_id = $1 ORDER BY id', [tenant]))).rows;

  /** A tenant made by the platform key, with projects, and an admin key of it. */
  async function tenantWith(projects: string[]): Promise<{ tenant: string; admin: { id: string; name: string; key: string } }> {
    const tenant = tid('t');
    expect((await call('POST', '/admin/tenants', platform.key, { id: tenant, name: `Studio ${tenant}`, plan: 'free' })).status).to.equal(201);
    for (const p of projects) expect((await call('POST', `/admin/projects?tenant=${tenant}`, platform.key, { id: p, name: p })).status).to.equal(201);
    const k = await call('POST', `/admin/keys?tenant=${tenant}`, platform.key, { kind: 'admin', name: 'studio admin' });
    expect(k.status).to.equal(201);
    return { tenant, admin: k.body };
  }

  /** Every entry the key may read (`query` e.g. `tenant=x`), all pages. */
  async function entries(key: string, query = ''): Promise<AuditRecord[]> {
    const all: AuditRecord[] = [];
    let before: string | null = null;
    do {
      const r = await call('GET', `/admin/audit?limit=200${query ? `&${query}` : ''}${before ? `&before=${before}` : ''}`, key);
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
      all.push(...(r.body.entries as AuditRecord[]));
      before = r.body.next_before as string | null;
    } while (before !== null);
    return all;
  }

  describe('GET /admin/audit and what the admin API records', () => {
    it('when the platform key creates, re-plans, renames and deletes a tenant, then each is recorded with the key\'s id and name, the request id and before/after, plan.changed too', async () => {
      const tenant = tid('t');
      const rid = (n: string) => ({ 'x-request-id': `${tenant}-${n}` });
      expect((await call('POST', '/admin/tenants', platform.key, { id: tenant, name: 'Studio', plan: 'free' }, rid('create'))).status).to.equal(201);
      expect((await call('PATCH', `/admin/tenants/${tenant}`, platform.key, { plan: 'pro' }, rid('replan'))).status).to.equal(200);
      expect((await call('PATCH', `/admin/tenants/${tenant}`, platform.key, { name: 'Studio 2' }, rid('rename'))).status).to.equal(200);
      // A refused change records nothing.
      expect((await call('PATCH', `/admin/tenants/${tenant}`, platform.key, { plan: 'no-such-plan' })).status).to.equal(400);
      expect((await call('DELETE', `/admin/tenants/${tenant}`, platform.key, undefined, rid('delete'))).status).to.equal(204);

      const got = (await entries(platform.key, `tenant=default`)).filter((e) => e.tenant === tenant);
      expect(got, 'a tenant\'s entries are its own, not tenant default\'s').to.deep.equal([]);
      const mine = (await entries(platform.key)).filter((e) => e.tenant === tenant).reverse();
      expect(mine.map((e) => [e.action, e.request_id])).to.deep.equal([
        ['tenant.created', `${tenant}-create`],
        ['tenant.updated', `${tenant}-replan`],
        ['plan.changed', `${tenant}-replan`],
        ['tenant.updated', `${tenant}-rename`],
        ['tenant.deleted', `${tenant}-delete`],
      ]);
      for (const e of mine) expect(e).to.deep.include({ tenant, project: null, key: { id: platform.id, name: platform.name }, target: `tenant ${tenant}` });
      expect(mine[0]!.change).to.deep.nested.include({ 'after.plan': 'free', 'after.name': 'Studio' });
      expect(mine[1]!.change).to.deep.nested.include({ 'before.plan': 'free', 'after.plan': 'pro', 'before.name': 'Studio', 'after.name': 'Studio' });
      // The plan and the tenant's own quota (monthly_ops), nothing else.
      expect(mine[2]!.change).to.deep.nested.include({ 'before.plan': 'free', 'after.plan': 'pro' });
      for (const side of ['before', 'after'] as const) expect(Object.keys((mine[2]!.change as Record<string, object>)[side]!)).to.satisfy((ks: string[]) => ks.every((k) => k === 'plan' || k === 'monthly_ops'));
      expect(mine[3]!.change).to.deep.nested.include({ 'before.name': 'Studio', 'after.name': 'Studio 2', 'after.plan': 'pro' });
      expect(mine[4]!.change).to.deep.nested.include({ 'before.name': 'Studio 2' });
      expect(mine[4]!.change).not.to.have.property('after');
      expect(Date.parse(mine[0]!.at)).to.be.at.most(Date.parse(mine[4]!.at));
    });

    it('when a tenant admin makes and removes projects, keys and boards, then each is recorded with its project, target and change, and no key text or webhook secret is anywhere in the table', async () => {
      const { tenant, admin } = await tenantWith([]);
      const h = { 'x-request-id': `${tenant}-admin` };
      expect((await call('POST', '/admin/projects', admin.key, { id: 'live', name: 'Live' }, h)).status).to.equal(201);
      expect((await call('POST', '/admin/projects', admin.key, { id: 'dev', name: 'Dev' }, h)).status).to.equal(201);
      const server = (await call('POST', '/admin/keys', admin.key, { kind: 'server', name: 'game server', project: 'live' }, h)).body;
      const second = (await call('POST', '/admin/keys', admin.key, { kind: 'admin', name: 'second admin' }, h)).body;
      expect((await call('DELETE', `/admin/keys/${server.id}`, admin.key, undefined, h)).status).to.equal(204);
      const board = await call('POST', '/admin/boards?project=live', admin.key, { id: 'weekly', title: 'Weekly', reset: 'weekly', webhook_url: 'http://127.0.0.1:9/hook' }, h);
      expect(board.status).to.equal(201);
      const secret = board.body.webhook_secret as string;
      expect(secret).to.be.a('string').with.length.above(16);
      expect((await call('PATCH', '/admin/boards/weekly?project=live', admin.key, { title: 'Weekly cup' }, h)).status).to.equal(200);
      expect((await call('DELETE', '/admin/boards/weekly?project=live', admin.key, undefined, h)).status).to.equal(204);
      expect((await call('DELETE', '/admin/projects/dev', admin.key, undefined, h)).status).to.equal(204);

      const mine = (await entries(admin.key)).reverse();
      const byAdmin = mine.filter((e) => e.key?.id === admin.id);
      expect(byAdmin.map((e) => [e.action, e.project, e.target])).to.deep.equal([
        ['project.created', 'live', 'project live'],
        ['project.created', 'dev', 'project dev'],
        ['key.created', 'live', `key ${server.id}`],
        ['key.created', null, `key ${second.id}`],
        ['key.revoked', 'live', `key ${server.id}`],
        ['board.created', 'live', 'board weekly'],
        ['board.updated', 'live', 'board weekly'],
        ['board.deleted', 'live', 'board weekly'],
        ['project.deleted', 'dev', 'project dev'],
      ]);
      for (const e of byAdmin) expect(e).to.deep.include({ tenant, key: { id: admin.id, name: 'studio admin' }, request_id: `${tenant}-admin` });
      expect(byAdmin[2]!.change).to.deep.equal({ after: { id: server.id, kind: 'server', name: 'game server', project: 'live' } });
      expect(byAdmin[4]!.change).to.deep.nested.include({ 'before.id': server.id, 'before.revoked_at': null });
      expect(byAdmin[5]!.change).to.deep.nested.include({ 'after.title': 'Weekly', 'after.reset': 'weekly' });
      expect(byAdmin[6]!.change).to.deep.nested.include({ 'before.title': 'Weekly', 'after.title': 'Weekly cup' });
      expect(byAdmin[7]!.change).to.deep.nested.include({ 'before.title': 'Weekly cup' });
      expect(byAdmin[8]!.change).to.deep.nested.include({ 'before.id': 'dev', 'before.name': 'Dev' });
      // The platform's own steps of tenantWith are the tenant's entries too, by the platform key.
      expect(mine.filter((e) => e.key?.id === platform.id).map((e) => e.action)).to.deep.equal(['tenant.created', 'key.created']);

      // No secret in any column of any row of the tenant, nor any key's text or its secret half.
      const rows = JSON.stringify(await rowsOf(tenant));
      for (const s of [server.key, server.key.slice(13), second.key, second.key.slice(13), admin.key, admin.key.slice(13), secret]) expect(rows).not.to.include(s);
      expect(rows).not.to.match(/webhook_secret|key_hash/);
    });

    it('when tenant A\'s admin reads the audit log, then it gets A\'s entries only, B\'s tenant answers like a missing one, and the platform reads one tenant or all', async () => {
      const A = await tenantWith(['game']);
      const B = await tenantWith(['game']);
      expect((await call('POST', '/admin/boards', B.admin.key, { id: 'b-only', title: 'B' })).status).to.equal(201);
      const a = await call('GET', '/admin/audit', A.admin.key);
      expect(a.status).to.equal(200);
      expect(a.body.tenant).to.equal(A.tenant);
      expect((a.body.entries as AuditRecord[]).map((e) => e.tenant)).to.satisfy((ts: string[]) => ts.length > 0 && ts.every((t) => t === A.tenant));
      const theirs = await call('GET', `/admin/audit?tenant=${B.tenant}`, A.admin.key);
      const missing = await call('GET', '/admin/audit?tenant=nosuch-tenant', A.admin.key);
      expect(theirs.status).to.equal(404);
      expect(JSON.stringify(theirs.body)).to.equal(JSON.stringify(missing.body).split('nosuch-tenant').join(B.tenant));
      // A server key may not read it.
      const server = (await call('POST', '/admin/keys', A.admin.key, { kind: 'server', name: 's', project: 'game' })).body.key as string;
      expect((await call('GET', '/admin/audit', server)).status).to.equal(403);
      expect((await call('GET', '/admin/audit', null)).status).to.equal(401);

      const one = await call('GET', `/admin/audit?tenant=${B.tenant}`, platform.key);
      expect(one.body.tenant).to.equal(B.tenant);
      expect((one.body.entries as AuditRecord[]).map((e) => e.target)).to.include('board b-only');
      expect((one.body.entries as AuditRecord[]).every((e) => e.tenant === B.tenant)).to.equal(true);
      const all = await call('GET', '/admin/audit?limit=200', platform.key);
      expect(all.body.tenant).to.equal(null);
      expect(new Set((all.body.entries as AuditRecord[]).map((e) => e.tenant))).to.include.members([A.tenant, B.tenant]);
    });

    it('when the log is paged with limit and before and filtered by action, then pages are newest first and disjoint, next_before ends them, and bad values are 400 invalid_query', async () => {
      const { tenant, admin } = await tenantWith([]);
      for (let i = 0; i < 7; i++) expect((await call('POST', '/admin/projects', admin.key, { id: `p${i}`, name: `P${i}` })).status).to.equal(201);
      const pages: AuditRecord[][] = [];
      let before: string | null = null;
      do {
        const r = await call('GET', `/admin/audit?limit=3${before ? `&before=${before}` : ''}`, admin.key);
        expect(r.status).to.equal(200);
        pages.push(r.body.entries);
        before = r.body.next_before;
        if (before !== null) expect(before).to.equal(r.body.entries[2].id);
      } while (before !== null);
      // tenant.created, key.created (the admin key), 7 × project.created.
      expect(pages.map((p) => p.length)).to.deep.equal([3, 3, 3]);
      const flat = pages.flat();
      expect(flat.map((e) => e.target).slice(0, 7)).to.deep.equal(['project p6', 'project p5', 'project p4', 'project p3', 'project p2', 'project p1', 'project p0']);
      expect(flat.map((e) => e.action).slice(7)).to.deep.equal(['key.created', 'tenant.created']);
      const ids = flat.map((e) => BigInt(e.id));
      for (let i = 1; i < ids.length; i++) expect(ids[i]! < ids[i - 1]!).to.equal(true);
      expect((await call('GET', '/admin/audit', admin.key)).body).to.deep.include({ next_before: null });

      const created = await call('GET', `/admin/audit?action=project.created&limit=5`, admin.key);
      expect((created.body.entries as AuditRecord[]).map((e) => e.target)).to.deep.equal(['project p6', 'project p5', 'project p4', 'project p3', 'project p2']);
      const rest = await call('GET', `/admin/audit?action=project.created&before=${created.body.next_before}`, admin.key);
      expect((rest.body.entries as AuditRecord[]).map((e) => e.target)).to.deep.equal(['project p1', 'project p0']);
      expect(rest.body.next_before).to.equal(null);
      expect((await call('GET', `/admin/audit?action=tenant.created&tenant=${tenant}`, admin.key)).body.entries).to.have.length(1);

      for (const [q, field] of [
        ['limit=0', 'limit'],
        ['limit=201', 'limit'],
        ['limit=x', 'limit'],
        ['before=0', 'before'],
        ['before=-3', 'before'],
        ['before=1.5', 'before'],
        ['action=tenant.exploded', 'action'],
        ['action=project.created&action=key.created', 'action'],
      ] as const) {
        const r = await call('GET', `/admin/audit?${q}`, admin.key);
        expect(r.status, q).to.equal(400);
        expect(r.body, q).to.include({ error: 'invalid_query', field });
      }
      expect((await call('GET', '/admin/audit?limit=200', admin.key)).status).to.equal(200);
    });

    it('when the audit insert fails, then the request fails with it (500) instead of answering a success, the change itself made', async () => {
      const { tenant, admin } = await tenantWith([]);
      const append = svc.deps.audit.append;
      svc.deps.audit.append = async () => {
        throw new Error('audit insert failed (test)');
      };
      try {
        const r = await call('POST', '/admin/projects', admin.key, { id: 'unrecorded', name: 'U' });
        expect(r.status).to.equal(500);
        expect(r.body.error).to.equal('internal');
      } finally {
        svc.deps.audit.append = append;
      }
      expect((await call('GET', '/admin/projects', admin.key)).body.projects.map((p: { id: string }) => p.id)).to.deep.equal(['unrecorded']);
      expect((await audit.list(tenant, { limit: 10, action: 'project.created' })).length).to.equal(0);
    });
  });

  describe('the admin CLI', () => {
    /** `npm run admin -- ...` with the services' topology and key prefix. */
    async function admin(...args: string[]): Promise<{ code: number; out: string[]; err: string }> {
      const out: string[] = [];
      let err = '';
      const code = await runAdmin(args, (s) => out.push(s), (s) => (err += s), { TOPOLOGY: topologyJson(svc.topology), KEY_PREFIX: svc.config.keyPrefix });
      return { code, out, err };
    }

    it('when the CLI manages a tenant, a project and keys, replays a webhook delivery and lifts a login lockout, then each is recorded with key cli and its change, and nothing it did not do', async () => {
      const tenant = tid('t');
      const ok = async (...args: string[]): Promise<string[]> => {
        const r = await admin(...args);
        expect(r.code, `${args.join(' ')}: ${r.err}`).to.equal(0);
        return r.out;
      };
      await ok('tenant', 'create', tenant, '--name', 'CLI Studio');
      await ok('tenant', 'update', tenant, '--plan', 'hobby');
      await ok('project', 'create', 'live', '--tenant', tenant, '--name', 'Live');
      await ok('project', 'create', 'old', '--tenant', tenant, '--name', 'Old');
      await ok('project', 'delete', 'old', '--tenant', tenant);
      const [client] = await ok('key', 'create', '--name', 'cli client', '--kind', 'client', '--tenant', tenant, '--project', 'live');
      const [server] = await ok('key', 'create', '--name', 'cli server', '--kind', 'server', '--tenant', tenant, '--project', 'live');
      const serverId = server!.split('_')[1]!;
      await ok('key', 'revoke', serverId, '--tenant', tenant);
      // A refused command records nothing.
      expect((await admin('key', 'revoke', serverId, '--tenant', tenant)).code).to.equal(1);

      // A failed delivery of the project, replayed.
      const delivery = `weekly/${tenant}`;
      await svc.deps.pools.inScope(control, { tenant, project: 'live' }, (c) =>
        c.query(`INSERT INTO webhook_deliveries (id, board, period, url, payload, status, attempts, last_error) VALUES ($1, 'weekly', '2026-W49', 'http://127.0.0.1:9/h', '{}', 'failed', 5, 'receiver answered 503')`, [delivery]),
      );
      await ok('webhook', 'replay', delivery, '--tenant', tenant, '--project', 'live');
      expect((await admin('webhook', 'replay', delivery, '--tenant', tenant, '--project', 'live')).code).to.equal(1);

      // A player of the project with a failed login: its counter is lifted; one with none records nothing.
      const api = new Client(svc.url);
      const user = uniqueId('u');
      expect((await api.request('POST', '/auth/register', { body: { user_id: user, name: 'P', region: 'EU', password: 'correct horse' }, headers: { 'x-api-key': client! } })).status).to.equal(201);
      expect((await api.request('POST', '/auth/login', { body: { user_id: user, password: 'wrong horse' }, headers: { 'x-api-key': client! } })).status).to.equal(401);
      await ok('login', 'unlock', '--user', user, '--tenant', tenant, '--project', 'live');
      await ok('login', 'unlock', '--user', `${user}-clean`, '--tenant', tenant, '--project', 'live');
      await ok('login', 'status', '--user', user, '--tenant', tenant, '--project', 'live');

      const mine = (await audit.list(tenant, { limit: 100 })).reverse();
      expect(mine.map((e) => [e.action, e.project, e.target])).to.deep.equal([
        ['tenant.created', null, `tenant ${tenant}`],
        ['tenant.updated', null, `tenant ${tenant}`],
        ['plan.changed', null, `tenant ${tenant}`],
        ['project.created', 'live', 'project live'],
        ['project.created', 'old', 'project old'],
        ['project.deleted', 'old', 'project old'],
        ['key.created', 'live', `key ${client!.split('_')[1]}`],
        ['key.created', 'live', `key ${serverId}`],
        ['key.revoked', 'live', `key ${serverId}`],
        ['webhook.replayed', 'live', `webhook delivery ${delivery}`],
        ['login.unlocked', 'live', `login user ${user}`],
      ]);
      for (const e of mine) expect(e).to.deep.include({ tenant, key: { id: null, name: 'cli' }, request_id: null });
      expect(mine[2]!.change).to.deep.nested.include({ 'before.plan': 'free', 'after.plan': 'hobby' });
      expect(mine[9]!.change).to.deep.equal({ before: { status: 'failed', attempts: 5, last_error: 'receiver answered 503' }, after: { status: 'pending', attempts: 0, last_error: null } });
      expect(mine[10]!.change).to.deep.equal({ before: { failures: 1, locked: false } });
      const rows = JSON.stringify(await rowsOf(tenant));
      for (const k of [client!, server!]) for (const s of [k, k.slice(13)]) expect(rows).not.to.include(s);
    });
  });

  describe('the repository', () => {
    it('when an entry is appended, then the tenant lists it newest first with every field, and another tenant does not see it', async () => {
      const t = tid('t');
      const other = tid('t');
      expect(await audit.append({ tenant: t, project: 'live', key: { id: 'k1', name: 'ops' }, action: 'board.updated', target: 'board weekly', change: { before: { title: 'A' }, after: { title: 'B' } }, requestId: 'req-1' })).to.equal(true);
      expect(await audit.append({ tenant: t, action: 'tenant.updated', target: `tenant ${t}` })).to.equal(true);
      await audit.append({ tenant: other, action: 'tenant.created', target: `tenant ${other}` });
      const listed = await audit.list(t, { limit: 10 });
      expect(listed.map((e) => e.action)).to.deep.equal(['tenant.updated', 'board.updated']);
      expect(listed[1]).to.deep.include({ tenant: t, project: 'live', key: { id: 'k1', name: 'ops' }, target: 'board weekly', change: { before: { title: 'A' }, after: { title: 'B' } }, request_id: 'req-1' });
      expect(listed[0]).to.deep.include({ project: null, key: null, change: null, request_id: null });
      expect(Date.parse(listed[1]!.at)).to.be.closeTo(Date.now(), 60_000);
      expect((await audit.list(other, { limit: 10 })).map((e) => e.tenant)).to.deep.equal([other]);
      // Every tenant's, for the platform: both tenants' entries, newest first.
      const all = await audit.list(undefined, { limit: 1000 });
      const mine = all.filter((e) => e.tenant === t || e.tenant === other).map((e) => e.action);
      expect(mine).to.deep.equal(['tenant.created', 'tenant.updated', 'board.updated']);
      expect(all.map((e) => BigInt(e.id))).to.deep.equal([...all.map((e) => BigInt(e.id))].sort((x, y) => (x < y ? 1 : x > y ? -1 : 0)));
    });

    it('when a quota event is appended with once, then the same tenant, action and target is recorded only the first time', async () => {
      const t = tid('t');
      const warn = { tenant: t, action: 'quota.warning' as const, target: quotaTarget('2026-12', 75), change: { after: { used: 75, quota: 100 } } };
      expect(await audit.append(warn, { once: true })).to.equal(true);
      expect(await audit.append(warn, { once: true })).to.equal(false);
      expect(await audit.append({ ...warn, target: quotaTarget('2026-12', 90) }, { once: true })).to.equal(true);
      expect(await audit.append({ ...warn, target: quotaTarget('2027-01', 75) }, { once: true })).to.equal(true);
      expect(await audit.append({ ...warn, tenant: tid('t') }, { once: true })).to.equal(true);
      expect(await audit.append({ ...warn, action: 'quota.exceeded', target: quotaTarget('2026-12', 100) }, { once: true })).to.equal(true);
      expect(await audit.append({ ...warn, action: 'quota.exceeded', target: quotaTarget('2026-12', 100) }, { once: true })).to.equal(false);
      expect((await rowsOf(t)).map((r) => r.target)).to.deep.equal(['quota 2026-12 75%', 'quota 2026-12 90%', 'quota 2027-01 75%', 'quota 2026-12 100%']);
      // Only quota events are once-only.
      let refused: unknown;
      await audit.append({ tenant: t, action: 'tenant.updated', target: 'x' }, { once: true }).catch((e: unknown) => (refused = e));
      expect(refused).to.be.instanceOf(Error);
    });

    it('when the services\' role inserts and reads, then both work, and UPDATE, DELETE and TRUNCATE fail (for the owner too, by the trigger)', async () => {
      const t = tid('t');
      await audit.append({ tenant: t, action: 'tenant.created', target: `tenant ${t}` });
      const inScope = (sql: string) => svc.deps.pools.inScope(control, { tenant: t }, (c) => c.query(sql, sql.includes('$1') ? [t] : []));
      // The pools connect as lb_app.
      expect((await inScope("SELECT current_user AS u, $1::text AS t")).rows[0]).to.deep.equal({ u: 'lb_app', t });
      expect((await inScope("INSERT INTO audit_log (tenant_id, action, target) VALUES ($1, 'tenant.updated', 'by hand')")).rowCount).to.equal(1);
      expect((await inScope('SELECT count(*)::int AS n FROM audit_log WHERE tenant_id = $1')).rows[0].n).to.equal(2);
      for (const sql of [
        "UPDATE audit_log SET target = 'forged' WHERE tenant_id = $1",
        'DELETE FROM audit_log WHERE tenant_id = $1',
        'TRUNCATE audit_log',
      ]) {
        let failed: { code?: string } | undefined;
        await inScope(sql).catch((e: { code?: string }) => (failed = e));
        expect(failed?.code, sql).to.equal('42501');
      }
      expect((await rowsOf(t)).map((r) => r.target)).to.deep.equal([`tenant ${t}`, 'by hand']);
      // Another tenant's row cannot be written from this tenant's scope.
      let refused: { code?: string } | undefined;
      await inScope(`INSERT INTO audit_log (tenant_id, action, target) VALUES ('default', 'tenant.updated', 'forged')`).catch((e: { code?: string }) => (refused = e));
      expect(refused?.code).to.equal('42501');
      // The owner (the migrations' role) is refused by the trigger.
      const owner = new pg.Client({ connectionString: svc.topology.shards[0]!.postgres });
      await owner.connect();
      try {
        for (const sql of ["UPDATE audit_log SET target = 'forged' WHERE tenant_id = $1", 'DELETE FROM audit_log WHERE tenant_id = $1']) {
          let failed: Error | undefined;
          await owner.query(sql, [t]).catch((e: Error) => (failed = e));
          expect(failed?.message, sql).to.match(/append-only/);
        }
      } finally {
        await owner.end();
      }
      expect(await rowsOf(t)).to.have.length(2);
    });
  });
});
