/**
 * The operator's `admin login status|unlock` against a real service on the
 * harness' Redis shards: a locked user id or client IP is shown as locked,
 * and after `unlock` the service admits it again, whichever shard its
 * counter lives on.
 */
import { expect } from 'chai';
import { uniqueId } from '@lb/devtools/testing';
import { runAdmin } from '../src/admin/cli.js';
import { ApiKeysRepo } from '../src/db/api-keys-repo.js';
import type { LoginStatusLine } from '../src/admin/login-admin.js';
import { Client, startService, type TestService } from './support/service.js';
import { topologyJson } from '@lb/common/platform';

const PASSWORD = 'correct horse';
const LIMITS = { LOGIN_USER_MAX_FAILS: '3', LOGIN_IP_MAX_FAILS: '4', LOGIN_FAIL_WINDOW_S: '900' };

describe('admin login status and unlock', function () {
  this.timeout(60_000);
  let svc: TestService;
  let api: Client;
  let env: Record<string, string>;

  before(async () => {
    svc = await startService(LIMITS);
    api = new Client(svc.url);
    // What the operator's shell has: the services' topology, key prefix and limits.
    env = { TOPOLOGY: topologyJson(svc.topology), KEY_PREFIX: svc.config.keyPrefix, ...LIMITS };
  });
  after(async () => svc?.stop());

  async function admin(...args: string[]): Promise<{ code: number; out: string[]; err: string }> {
    const out: string[] = [];
    let err = '';
    const code = await runAdmin(args, (s) => out.push(s), (s) => (err += s), env);
    return { code, out, err };
  }

  async function status(kind: 'ip' | 'user', key: string): Promise<LoginStatusLine> {
    const r = await admin('login', 'status', `--${kind}`, key, '--json');
    expect(r.code, r.err).to.equal(0);
    return JSON.parse(r.out[0]!) as LoginStatusLine;
  }

  /** A login as if through a gateway that saw the client at `ip`. */
  const login = (user_id: string, password: string, ip: string) => api.post('/auth/login', { user_id, password }, { headers: { 'x-forwarded-for': ip } });

  /** One key per shard (counters live on the shard hashing the key picks): `make(i)` until every shard has one. */
  function onEveryShard(make: (i: number) => string): string[] {
    const byShard = new Map<string, string>();
    for (let i = 0; byShard.size < svc.deps.router.shards.length; i++) {
      const key = make(i);
      const shard = svc.deps.router.hashShard(key).id;
      if (!byShard.has(shard)) byShard.set(shard, key);
    }
    return [...byShard.values()];
  }

  it('when a user id is locked out, then status shows it locked on its shard and unlock lets its right password in again', async () => {
    const base = uniqueId('locked');
    const users = onEveryShard((i) => `${base}-${i}`);
    expect(users.length).to.be.greaterThan(1);
    for (const [u, user] of users.entries()) {
      await api.register(user, 'EU');
      // Failures from different addresses: only the user's counter fills.
      for (let i = 0; i < 3; i++) expect((await login(user, 'wrong password', `10.70.${u}.${i}`)).status).to.equal(401);
      expect((await login(user, PASSWORD, `10.71.${u}.1`)).status, user).to.equal(429);

      const s = await status('user', user);
      expect(s).to.deep.include({ kind: 'user', key: user, shard: svc.deps.router.hashShard(user).id, failures: 4, limit: 3, locked: true });
      expect(s.resets_in_s).to.be.within(1, 900);

      const lifted = await admin('login', 'unlock', '--user', user);
      expect(lifted.code, lifted.err).to.equal(0);
      expect(lifted.out[0]).to.include('counter deleted');
      const ok = await login(user, PASSWORD, `10.71.${u}.1`);
      expect(ok.status, JSON.stringify(ok.body)).to.equal(200);
      // The success reset the counter: nothing left to lift.
      expect((await status('user', user)).locked).to.equal(false);
      expect((await admin('login', 'unlock', '--user', user)).out[0]).to.include('nothing to lift');
    }
  });

  it('when a client IP is locked out, then status shows it, other addresses log in, and unlock lets it in again', async () => {
    const user = uniqueId('behind');
    await api.register(user, 'NA');
    const ips = onEveryShard((i) => `10.80.${Math.floor(i / 250)}.${(i % 250) + 1}`);
    for (const ip of ips) {
      for (let i = 0; i < 4; i++) expect((await login(uniqueId('ghost'), 'wrong password', ip)).status).to.equal(401);
      expect((await login(user, PASSWORD, ip)).status, ip).to.equal(429);
      expect(await status('ip', ip)).to.deep.include({ kind: 'ip', key: ip, shard: svc.deps.router.hashShard(ip).id, limit: 4, locked: true });
      expect((await login(user, PASSWORD, '10.81.0.1')).status).to.equal(200);

      const lifted = await admin('login', 'unlock', '--ip', ip);
      expect(lifted.code, lifted.err).to.equal(0);
      expect(lifted.out[0]).to.include(`ip ${ip}`).and.include('counter deleted');
      expect((await login(user, PASSWORD, ip)).status, ip).to.equal(200);
    }
  });

  it("when a player of another project is locked out, then status and unlock reach it with --tenant and --project, and the default project's counter of the same id is another one", async () => {
    const platform = (await new ApiKeysRepo(svc.deps.pools, svc.deps.router.shards[0]!.id).create('login admin')).key;
    const post = async (path: string, body: unknown, key: string) => {
      const r = await api.post(path, body, { headers: { 'x-api-key': key } });
      expect(r.status, JSON.stringify(r.body)).to.equal(201);
      return r.body;
    };
    const tenant = uniqueId('lk').toLowerCase().replace(/[^a-z0-9]/g, '');
    await post('/admin/tenants', { id: tenant, name: tenant, plan: 'pro' }, platform);
    await post(`/admin/projects?tenant=${tenant}`, { id: 'live', name: 'Live' }, platform);
    const client = (await post(`/admin/keys?tenant=${tenant}`, { kind: 'client', name: 'c', project: 'live' }, platform)).key as string;
    const user = uniqueId('twin');
    await api.register(user, 'EU'); // the default project's player of that id
    await post('/auth/register', { user_id: user, name: 'Twin', region: 'EU', password: PASSWORD }, client);
    const projectLogin = (password: string, ip: string) => api.post('/auth/login', { user_id: user, password }, { headers: { 'x-forwarded-for': ip, 'x-api-key': client } });
    for (let i = 0; i < 3; i++) expect((await projectLogin('wrong password', `10.90.0.${i}`)).status).to.equal(401);
    expect((await projectLogin(PASSWORD, '10.90.1.1')).status).to.equal(429);
    expect((await login(user, PASSWORD, '10.90.2.1')).status, 'the default project\'s player').to.equal(200);

    const scoped = async (...args: string[]) => {
      const r = await admin('login', ...args, '--tenant', tenant, '--project', 'live');
      expect(r.code, r.err).to.equal(0);
      return r;
    };
    expect((await status('user', user)).locked, 'default project').to.equal(false);
    expect(JSON.parse((await scoped('status', '--user', user, '--json')).out[0]!)).to.deep.include({ key: user, failures: 4, locked: true });
    expect((await scoped('unlock', '--user', user)).out[0]).to.include('counter deleted');
    expect((await projectLogin(PASSWORD, '10.90.1.1')).status).to.equal(200);
    // Naming a project needs a valid id.
    expect((await admin('login', 'status', '--user', user, '--tenant', tenant)).code).to.equal(2);
  });

  it('when status is asked of an address with no failures, or of both kinds at once, then it says so, one line each', async () => {
    const r = await admin('login', 'status', '--ip', '192.0.2.77', '--user', uniqueId('nobody'));
    expect(r.code, r.err).to.equal(0);
    expect(r.out).to.have.length(2);
    for (const line of r.out) expect(line).to.include('no failures counted');
    expect(await status('ip', '192.0.2.77')).to.deep.include({ failures: 0, locked: false, resets_in_s: 0 });
  });

  it('when the target is missing or not an address, then usage and exit code 2', async () => {
    for (const args of [
      ['login', 'unlock'],
      ['login', 'status'],
      ['login', 'unlock', '--ip', 'alice'],
      ['login', 'reset', '--ip', '10.0.0.1'],
    ]) {
      const r = await admin(...args);
      expect(r.code, args.join(' ')).to.equal(2);
      expect(r.out, args.join(' ')).to.deep.equal([]);
    }
  });

  it("when the counter's shard cannot be reached, then the command fails instead of answering from memory", async () => {
    const down = svc.deps.router.shards[0]!.id;
    const ip = onEveryShard((i) => `10.90.0.${i + 1}`).find((k) => svc.deps.router.hashShard(k).id === down)!;
    // The same topology with that shard's Redis on a port nothing listens on.
    const topology = { ...svc.topology, shards: svc.topology.shards.map((s) => (s.id === down ? { ...s, redis: { kind: 'server' as const, url: 'redis://127.0.0.1:1' } } : s)) };
    const saved = env;
    env = { ...env, TOPOLOGY: topologyJson(topology) };
    try {
      let failure: unknown;
      await admin('login', 'unlock', '--ip', ip).catch((e: unknown) => (failure = e));
      expect(failure, 'unlock on an unreachable shard').to.be.instanceOf(Error);
      expect((failure as Error).message).to.include(down);
    } finally {
      env = saved;
    }
  });
});
