/**
 * Tenants, projects and API keys of four kinds (issue 20): the admin API's
 * lifecycle with each kind, keys shown once and stored hashed, revocation
 * seen by another replica within a second, tokens that carry their project,
 * cross-tenant names answering like missing ones, and no credentials
 * meaning the default project.
 */
import { createHash } from 'node:crypto';
import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { uniqueId } from '@lb/devtools/testing';
import { runAdmin } from '../src/admin/cli.js';
import { ApiKeysRepo } from '../src/db/api-keys-repo.js';
import { Client, startService, type Reply, type TestService } from './support/service.js';
import { topologyJson } from '@lb/common/platform';

const tid = (p: string) => uniqueId(p).toLowerCase().replace(/[^a-z0-9_-]/g, '');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('tenants, projects and keys', function () {
  this.timeout(60_000);
  let a: TestService;
  let b: TestService;
  let platform: string;
  let ca: Client;

  before(async () => {
    a = await startService();
    b = await startService({ KEY_PREFIX: a.config.keyPrefix });
    platform = (await new ApiKeysRepo(a.deps.pools, a.deps.router.shards[0]!.id).create('tenancy tests')).key;
    ca = new Client(a.url);
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
  });

  const call = (method: string, path: string, key: string | null, body?: unknown, token?: string, svc: TestService = a): Promise<Reply> =>
    new Client(svc.url).request(method, path, { ...(body !== undefined && { body }), ...(token !== undefined && { token }), headers: key === null ? {} : { 'x-api-key': key } });

  /** A tenant with projects, made by the platform key, and an admin key of it. */
  async function tenantWith(projects: string[]): Promise<{ tenant: string; admin: string }> {
    const tenant = tid('t');
    expect((await call('POST', '/admin/tenants', platform, { id: tenant, name: `Studio ${tenant}`, plan: 'free' })).status).to.equal(201);
    for (const p of projects) expect((await call('POST', `/admin/projects?tenant=${tenant}`, platform, { id: p, name: p })).status).to.equal(201);
    const k = await call('POST', `/admin/keys?tenant=${tenant}`, platform, { kind: 'admin', name: 'studio admin' });
    expect(k.status).to.equal(201);
    return { tenant, admin: k.body.key as string };
  }

  it('when the platform key manages a tenant, then it is created, listed, read, re-planned and deleted, and nothing else may', async () => {
    const tenant = tid('t');
    const made = await call('POST', '/admin/tenants', platform, { id: tenant, name: 'Studio', plan: 'free' });
    expect(made.status).to.equal(201);
    expect(made.body).to.include({ id: tenant, name: 'Studio', plan: 'free' });
    expect((await call('POST', '/admin/tenants', platform, { id: tenant, name: 'Again' })).body.error).to.equal('tenant_exists');
    expect((await call('GET', '/admin/tenants', platform)).body.tenants.map((t: { id: string }) => t.id)).to.include.members(['default', tenant]);
    const patched = await call('PATCH', `/admin/tenants/${tenant}`, platform, { plan: 'pro' });
    expect(patched.status).to.equal(200);
    expect(patched.body.plan).to.equal('pro');
    expect((await call('GET', `/admin/tenants/${tenant}`, platform)).body.plan).to.equal('pro');
    expect((await call('POST', '/admin/tenants', platform, { id: 'Not An Id', name: 'x' })).body).to.include({ error: 'invalid_payload', field: 'id' });

    // An admin key of the tenant: its own projects and keys, never the tenants.
    const admin = (await call('POST', `/admin/keys?tenant=${tenant}`, platform, { kind: 'admin', name: 'a' })).body.key as string;
    for (const [m, p] of [['GET', '/admin/tenants'], ['GET', `/admin/tenants/${tenant}`], ['DELETE', `/admin/tenants/${tenant}`], ['GET', '/admin/stats']] as const) {
      const r = await call(m, p, admin);
      expect(r.status, `${m} ${p}`).to.equal(403);
      expect(r.body.error).to.equal('forbidden');
    }
    expect((await call('DELETE', '/admin/tenants/default', platform)).body.error).to.equal('tenant_protected');
    expect((await call('DELETE', `/admin/tenants/${tenant}`, platform)).status).to.equal(204);
    expect((await call('GET', `/admin/tenants/${tenant}`, platform)).body.error).to.equal('tenant_not_found');
    // Its keys went with it (once this replica's memory of the admin key, under a second, is gone).
    await sleep(1000);
    expect((await call('GET', '/admin/projects', admin)).body.error).to.equal('invalid_api_key');
  });

  it('when a tenant admin makes projects and keys, then each key is shown once, stored as its SHA-256 only, listed without secret, and revoked', async () => {
    const { tenant, admin } = await tenantWith([]);
    expect((await call('POST', '/admin/projects', admin, { id: 'live', name: 'Live' })).status).to.equal(201);
    expect((await call('POST', '/admin/projects', admin, { id: 'dev', name: 'Dev' })).status).to.equal(201);
    expect((await call('POST', '/admin/projects', admin, { id: 'dev', name: 'Dev again' })).body.error).to.equal('project_exists');
    expect((await call('GET', '/admin/projects', admin)).body).to.deep.include({ tenant });
    expect((await call('GET', '/admin/projects', admin)).body.projects.map((p: { id: string }) => p.id)).to.deep.equal(['dev', 'live']);

    const server = await call('POST', '/admin/keys', admin, { kind: 'server', name: 'game server', project: 'live' });
    expect(server.status).to.equal(201);
    expect(Object.keys(server.body).sort()).to.deep.equal(['id', 'key', 'kind', 'name', 'project']);
    expect(server.body).to.include({ kind: 'server', name: 'game server', project: 'live' });
    // Only the operator makes platform keys; a project of no one's is missing.
    expect((await call('POST', '/admin/keys', admin, { kind: 'platform', name: 'p' })).status).to.equal(403);
    expect((await call('POST', '/admin/keys', admin, { kind: 'client', name: 'c', project: 'nope' })).body.error).to.equal('project_not_found');
    expect((await call('POST', '/admin/keys', admin, { kind: 'client', name: 'c' })).body).to.include({ error: 'invalid_payload', field: 'project' });

    // In the tenant's row scope: the services' role sees no key outside one.
    const row = (await a.deps.pools.inScope(a.deps.router.shards[0]!.id, { tenant }, (c) => c.query('SELECT * FROM api_keys WHERE id = $1', [server.body.id]))).rows[0] as Record<string, unknown>;
    expect(row.key_hash).to.equal(createHash('sha256').update(server.body.key).digest('hex'));
    expect(Object.values(row).map(String).some((v) => v.includes(server.body.key.slice(13)))).to.equal(false);

    const listed = (await call('GET', '/admin/keys', admin)).body.keys as Record<string, unknown>[];
    expect(listed.map((k) => k.kind).sort()).to.deep.equal(['admin', 'server']);
    expect(JSON.stringify(listed)).not.to.include(server.body.key);
    expect((await call('DELETE', `/admin/keys/${server.body.id}`, admin)).status).to.equal(204);
    expect((await call('DELETE', `/admin/keys/${server.body.id}`, admin)).body.error).to.equal('key_not_found');
    expect((await call('GET', '/top', server.body.key)).body.error).to.equal('invalid_api_key');
  });

  it('when tenant A\'s admin names tenant B\'s project, key id or tenant, then it gets the 404 of a name that does not exist', async () => {
    const A = await tenantWith(['game']);
    const B = await tenantWith(['game', 'other']);
    const bKey = (await call('POST', '/admin/keys', B.admin, { kind: 'client', name: 'b client', project: 'game' })).body;
    const same = async (m: string, theirs: string, missing: string, swap: [string, string]) => {
      const x = await call(m, theirs, A.admin);
      const y = await call(m, missing, A.admin);
      expect(x.status, theirs).to.equal(404);
      expect(JSON.stringify(x.body)).to.equal(JSON.stringify(y.body).split(swap[1]).join(swap[0]));
    };
    await same('DELETE', '/admin/projects/other', '/admin/projects/nosuch', ['other', 'nosuch']);
    await same('DELETE', `/admin/keys/${bKey.id}`, '/admin/keys/00000000', [bKey.id, '00000000']);
    await same('GET', `/admin/projects?tenant=${B.tenant}`, '/admin/projects?tenant=nosuch-tenant', [B.tenant, 'nosuch-tenant']);
    await same('GET', `/boards?project=other`, '/boards?project=nosuch', ['other', 'nosuch']);
    // B's key still works: A revoked nothing.
    expect((await call('GET', '/boards', bKey.key)).status).to.equal(200);
    expect((await call('GET', '/admin/keys', B.admin)).body.keys.some((k: { id: string; revoked_at: unknown }) => k.id === bKey.id && k.revoked_at === null)).to.equal(true);
  });

  it('when a player registers through a client key, then the token carries the project, and with another project\'s key it is 401 invalid_token', async () => {
    const { tenant, admin } = await tenantWith(['live', 'dev']);
    const live = (await call('POST', '/admin/keys', admin, { kind: 'client', name: 'c', project: 'live' })).body.key as string;
    const dev = (await call('POST', '/admin/keys', admin, { kind: 'client', name: 'c', project: 'dev' })).body.key as string;
    const user = uniqueId('p');
    const reg = await ca.post('/auth/register', { user_id: user, name: 'P', region: 'EU', password: 'correct horse' }, { headers: { 'x-api-key': live } });
    expect(reg.status).to.equal(201);
    const token = reg.body.token as string;
    expect((jwt.decode(token) as Record<string, unknown>).prj).to.equal(`${tenant}/live`);
    const login = await ca.post('/auth/login', { user_id: user, password: 'correct horse' }, { headers: { 'x-api-key': live } });
    expect((jwt.decode(login.body.token) as Record<string, unknown>).prj).to.equal(`${tenant}/live`);

    expect((await call('POST', '/score/update', live, { score: 5 }, token)).status).to.equal(200);
    for (const [m, p, body] of [['POST', '/score/update', { score: 6 }], ['GET', '/top', undefined], ['GET', '/boards', undefined], ['GET', `/history/${user}`, undefined]] as const) {
      const r = await call(m, p, dev, body, token);
      expect(r.status, `${m} ${p}`).to.equal(401);
      expect(r.body.error).to.equal('invalid_token');
    }
    // A token of the default project (no key at registration) with a project's key is another project's token.
    const plain = await ca.register(uniqueId('d'), 'EU');
    expect((jwt.decode(plain) as Record<string, unknown>).prj).to.equal('default/default');
    expect((await call('GET', '/top', live, undefined, plain)).body.error).to.equal('invalid_token');
  });

  it('when a client key writes, then it writes only as its token\'s player; a server key writes for any player; an admin key writes for none', async () => {
    const { admin } = await tenantWith(['game']);
    const client = (await call('POST', '/admin/keys', admin, { kind: 'client', name: 'c', project: 'game' })).body.key as string;
    const server = (await call('POST', '/admin/keys', admin, { kind: 'server', name: 's', project: 'game' })).body.key as string;
    const alice = uniqueId('alice');
    const bob = uniqueId('bob');
    const reg = (id: string) => ca.post('/auth/register', { user_id: id, name: id, region: 'EU', password: 'correct horse' }, { headers: { 'x-api-key': client } });
    const token = (await reg(alice)).body.token as string;
    await reg(bob);

    const forBob = await call('POST', '/boards/main/scores', client, { user_id: bob, score: 10 }, token);
    expect(forBob.status).to.equal(403);
    expect(forBob.body.error).to.equal('forbidden');
    expect((await call('POST', '/boards/main/scores', client, { user_id: bob, score: 10 })).body.error).to.equal('missing_token');
    expect((await call('POST', '/boards/main/scores', client, { score: 10 }, token)).status).to.equal(200);
    const byServer = await call('POST', '/boards/main/scores', server, { user_id: bob, score: 11 });
    expect(byServer.status).to.equal(200);
    expect(byServer.body.user_id).to.equal(bob);
    expect((await call('POST', '/boards/main/scores', admin, { user_id: bob, score: 12 })).status).to.equal(403);
    // Neither may administer.
    for (const k of [client, server]) expect((await call('GET', '/admin/keys', k)).body.error).to.equal('forbidden');
    expect((await call('GET', '/admin/keys', null)).body.error).to.equal('invalid_api_key');
  });

  it('when a key is revoked on one replica, then another replica that had checked it refuses it within a second, without a restart', async () => {
    const { admin } = await tenantWith(['game']);
    const server = (await call('POST', '/admin/keys', admin, { kind: 'server', name: 's', project: 'game' })).body;
    expect((await call('GET', '/boards', server.key, undefined, undefined, b)).status).to.equal(200);
    expect((await call('DELETE', `/admin/keys/${server.id}`, admin)).status).to.equal(204);
    await sleep(1000);
    const r = await call('GET', '/boards', server.key, undefined, undefined, b);
    expect(r.status).to.equal(401);
    expect(r.body.error).to.equal('invalid_api_key');
  });

  it('when a plan changes or a project is deleted, then every replica sees it within a second: the plan on the key, the project\'s keys revoked', async () => {
    const { tenant, admin } = await tenantWith(['game', 'spare']);
    const spare = (await call('POST', '/admin/keys', admin, { kind: 'client', name: 'c', project: 'spare' })).body.key as string;
    const game = (await call('POST', '/admin/keys', admin, { kind: 'server', name: 's', project: 'game' })).body.key as string;
    expect((await b.deps.credentials.verify(game)).plan).to.equal('free');
    expect((await call('GET', '/boards', spare, undefined, undefined, b)).status).to.equal(200);
    expect((await call('PATCH', `/admin/tenants/${tenant}`, platform, { plan: 'pro' })).status).to.equal(200);
    expect((await call('DELETE', '/admin/projects/spare', admin)).status).to.equal(204);
    await sleep(1000);
    expect((await b.deps.credentials.verify(game)).plan).to.equal('pro');
    expect((await call('GET', '/boards', spare, undefined, undefined, b)).body.error).to.equal('invalid_api_key');
    expect((await call('GET', '/admin/projects', admin)).body.projects.map((p: { id: string }) => p.id)).to.deep.equal(['game']);
  });

  it('when an admin key\'s tenant has one project, then board routes act on it; with several, ?project= names one and its absence is a 400', async () => {
    const one = await tenantWith(['only']);
    expect((await call('GET', '/boards', one.admin)).status).to.equal(200);
    const two = await tenantWith(['x', 'y']);
    const r = await call('DELETE', '/admin/boards/nosuch', two.admin);
    expect(r.status).to.equal(400);
    expect(r.body).to.include({ error: 'invalid_query', field: 'project' });
    const named = await call('DELETE', '/admin/boards/nosuch?project=x', two.admin);
    expect(named.body.error, JSON.stringify(named.body)).to.equal('board_not_found');
    expect((await call('DELETE', '/admin/boards/nosuch?project=z', two.admin)).body.error).to.equal('project_not_found');
  });

  it('when a live route is opened, then it takes a client key as ?key=, and refuses any other kind there', async () => {
    const { admin } = await tenantWith(['game']);
    const client = (await call('POST', '/admin/keys', admin, { kind: 'client', name: 'c', project: 'game' })).body.key as string;
    const server = (await call('POST', '/admin/keys', admin, { kind: 'server', name: 's', project: 'game' })).body.key as string;
    expect((await ca.request('HEAD', `/live?key=${client}`)).status).to.equal(200);
    expect((await ca.request('HEAD', `/live?key=${server}`)).status).to.equal(401);
    expect((await ca.request('HEAD', `/live?key=${platform}`)).status).to.equal(401);
    // Not on the other routes: a key in a URL is for EventSource only.
    expect((await ca.get(`/top?key=${server}`)).status).to.equal(200);
  });

  it('when a request has no key and no token, then it is project default/default and works as before tenancy', async () => {
    const token = await ca.register(uniqueId('n'), 'NA');
    expect((jwt.decode(token) as Record<string, unknown>).prj).to.equal('default/default');
    expect((await ca.post('/score/update', { score: 3 }, { token })).status).to.equal(200);
    expect((await ca.get('/top?region=NA')).status).to.equal(200);
    expect((await ca.get('/boards')).status).to.equal(200);
    // The platform key, as npm start writes it, still administers the default project's boards.
    expect((await call('DELETE', '/admin/boards/nosuch', platform)).body.error).to.equal('board_not_found');
  });

  it('when the admin command manages tenants, projects and keys, then it does what the API does', async () => {
    const env = { ...process.env, TOPOLOGY: topologyJson(a.topology) };
    const out: string[] = [];
    let err = '';
    const run = (args: string[]) => runAdmin(args, (s) => out.push(s), (s) => (err += s), env);
    const tenant = tid('cli');
    expect(await run(['tenant', 'create', tenant, '--name', 'CLI studio', '--plan', 'free'])).to.equal(0);
    expect(await run(['project', 'create', 'game', '--tenant', tenant, '--name', 'Game'])).to.equal(0);
    expect(await run(['key', 'create', '--name', 'srv', '--kind', 'server', '--tenant', tenant, '--project', 'game'])).to.equal(0);
    const key = out[out.length - 1]!;
    expect((await call('GET', '/boards', key)).status).to.equal(200);
    out.length = 0;
    expect(await run(['key', 'list', '--tenant', tenant, '--json'])).to.equal(0);
    const listed = JSON.parse(out[0]!) as { id: string; kind: string; project: string }[];
    expect(listed).to.have.length(1);
    expect(listed[0]).to.include({ kind: 'server', project: 'game' });
    expect(await run(['key', 'revoke', listed[0]!.id, '--tenant', 'default'])).to.equal(1);
    expect(await run(['tenant', 'update', tenant, '--plan', 'pro'])).to.equal(0);
    expect(await run(['project', 'delete', 'game', '--tenant', tenant])).to.equal(0);
    expect(await run(['project', 'create', 'game', '--tenant', tenant, '--name', 'Game again'])).to.equal(1);
    expect(err).to.include('exists');
    expect(await run(['tenant', 'delete', tenant])).to.equal(0);
    expect(await run(['tenant', 'create', 'Bad Id', '--name', 'x'])).to.equal(2);
  });

  it("when a session of the services' role (no BYPASSRLS) reads the control tables, then it sees only the tenant it set, none with nothing set, and a key only through api_key_by_hash", async () => {
    const A = await tenantWith(['game']);
    const B = await tenantWith(['game']);
    const bKey = (await call('POST', '/admin/keys', B.admin, { kind: 'client', name: 'b', project: 'game' })).body.key as string;
    const db = await a.deps.pools.forShard(a.deps.router.shards[0]!.id).connect();
    try {
      const me = (await db.query('SELECT rolname, rolbypassrls, rolsuper FROM pg_roles WHERE rolname = current_user')).rows[0];
      expect(me).to.deep.equal({ rolname: 'lb_app', rolbypassrls: false, rolsuper: false });
      await db.query('BEGIN');
      const count = async (table: string) => Number((await db.query(`SELECT count(*) AS n FROM ${table} WHERE tenant_id = $1`, [B.tenant])).rows[0].n);
      expect(await count('projects')).to.equal(0);
      expect(await count('api_keys')).to.equal(0);
      await db.query("SELECT set_config('app.tenant_id', $1, true)", [A.tenant]);
      expect(await count('projects')).to.equal(0);
      expect(await count('api_keys')).to.equal(0);
      expect(Number((await db.query('SELECT count(*) AS n FROM api_keys')).rows[0].n)).to.equal(1);
      await db.query("SELECT set_config('app.tenant_id', $1, true)", [B.tenant]);
      expect(await count('api_keys')).to.equal(2);
      await db.query("SELECT set_config('app.tenant_id', '', true)");
      const found = await db.query('SELECT tenant_id, project_id, kind FROM api_key_by_hash($1)', [createHash('sha256').update(bKey).digest('hex')]);
      expect(found.rows).to.deep.equal([{ tenant_id: B.tenant, project_id: 'game', kind: 'client' }]);
    } finally {
      await db.query('ROLLBACK');
      db.release();
    }
  });
});
