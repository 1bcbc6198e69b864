/**
 * The service's side of fault isolation and hardening: a shard that is down
 * or stalled never turns into a wrong answer (partial GLOBAL reads only when
 * asked, a stalled write that is answered 503 is never applied later),
 * login throttling before any hash, and input that cannot be stored or
 * routed refused with 4xx.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { DEFAULT_PROJECT } from '@lb/common/contracts';
import { signToken, topologyJson } from '@lb/common/platform';
import { freePort, startRedis, type RedisProcess } from '@lb/devtools/infra';
import { uniqueId } from '@lb/devtools/testing';
import { HashSlots } from '../src/accounts/hash-slots.js';
import { Client, startService, TEST_SECRET, type TestService } from './support/service.js';
import { mainEntry } from '../../test/support/main-entry.js';

const PASSWORD = 'correct horse';

describe('leaderboard-service hardening', function () {
  this.timeout(60_000);

  describe('input that cannot be stored or routed', () => {
    let svc: TestService;
    let api: Client;
    before(async () => {
      svc = await startService();
      api = new Client(svc.url);
    });
    after(async () => svc?.stop());

    const register = (user_id: string, name = 'N') => api.post('/auth/register', { user_id, name, region: 'EU', password: PASSWORD });

    it('when a token was issued more than the allowed clock skew in the future, or carries no iat, then 401 invalid_token', async () => {
      const user = uniqueId('iat');
      await api.register(user, 'EU');
      const now = Math.floor(Date.now() / 1000);
      // jsonwebtoken writes the payload's own iat, or none with noTimestamp.
      const sign = (claims: Record<string, unknown>) =>
        jwt.sign({ sub: user, name: 'N', region: 'EU', iss: 'leaderboard-platform', exp: now + 3600, ...claims }, TEST_SECRET, {
          algorithm: 'HS256',
          noTimestamp: !('iat' in claims),
        });
      for (const [what, token] of [
        ['a day ahead', sign({ iat: now + 86_400 })],
        ['a minute ahead', sign({ iat: now + 60 })],
        ['without iat', sign({})],
      ] as const) {
        const r = await api.post('/score/add', { delta: 1 }, { token });
        expect(r.status, what).to.equal(401);
        expect(r.body.error, what).to.equal('invalid_token');
      }
      // Within the skew (30 s by default) a clock a little ahead is fine.
      expect((await api.post('/score/add', { delta: 1 }, { token: sign({ iat: now + 10 }) })).status).to.equal(200);
    });

    it('when a name has a lone surrogate, a control character, a bidirectional override or only spaces, then 400 naming the field', async () => {
      for (const name of ['x\ud800y', 'x\udc00', 'bell\u0007', 'nel\u0085', 'tab\there', 'evil\u202eexe.txt', '   ', '\ufffe']) {
        const r = await register(uniqueId('name'), name);
        expect(r.status, JSON.stringify(name)).to.equal(400);
        expect(r.body).to.include({ error: 'invalid_payload', field: 'name' });
      }
    });

    it('when a name is well-formed, then it is stored in NFC and served exactly as stored', async () => {
      const user = uniqueId('nfc');
      const family = '\u{1F468}\u200D\u{1F469}\u200D\u{1F467}';
      const r = await register(user, `Zoe\u0301 ${family}`);
      expect(r.status).to.equal(201);
      expect(r.body.user.name).to.equal(`Zo\u00e9 ${family}`);
      expect((await api.get(`/rank/${user}?region=EU`)).body.name).to.equal(`Zo\u00e9 ${family}`);
    });

    it('when a user id is "." or ".." or does not start with a letter or digit, then registration is 400 and reads are 400, never a routing 404', async () => {
      for (const id of ['.', '..', '.hidden', '-rf', '_x']) {
        const r = await register(id);
        expect(r.status, id).to.equal(400);
        expect(r.body).to.include({ error: 'invalid_payload', field: 'user_id' });
      }
      for (const path of ['/rank/-rf', '/around/_x', '/history/.hidden', '/score/rank/-x']) {
        const r = await api.get(path);
        expect(r.status, path).to.equal(400);
        expect(r.body.error, path).to.equal('invalid_payload');
      }
    });
  });

  describe('login throttling', () => {
    let svc: TestService;
    let api: Client;
    before(async () => {
      svc = await startService({ LOGIN_USER_MAX_FAILS: '3', LOGIN_IP_MAX_FAILS: '6', LOGIN_FAIL_WINDOW_S: '1' });
      api = new Client(svc.url);
    });
    after(async () => svc?.stop());

    /** A login as if through a gateway that saw the client at `ip`. */
    const login = (user_id: string, password: string, ip: string) =>
      api.post('/auth/login', { user_id, password }, { headers: { 'x-forwarded-for': ip } });

    it('when a known and an unknown user fail too often, then both get the same 429 with Retry-After, even with the right password, until the window ends', async () => {
      const known = uniqueId('known');
      await api.register(known, 'NA');
      const unknown = uniqueId('nobody');
      for (const [user, ip] of [[known, '10.1.0.1'], [unknown, '10.1.0.2']] as const) {
        for (let i = 0; i < 3; i++) expect((await login(user, 'wrong password', ip)).status).to.equal(401);
        const refused = await login(user, user === known ? PASSWORD : 'wrong password', ip);
        expect(refused.status, user).to.equal(429);
        expect(refused.body).to.include({ error: 'rate_limited' });
        expect(refused.headers.get('retry-after')).to.equal(String(refused.body.retry_after));
      }
      // Same answers for both: nothing tells which user id exists.
      const a = await login(known, 'x', '10.1.0.1');
      const b = await login(unknown, 'x', '10.1.0.2');
      expect([a.status, a.body.error, a.body.message]).to.deep.equal([b.status, b.body.error, b.body.message]);
      await sleep(2100);
      const ok = await login(known, PASSWORD, '10.1.0.1');
      expect(ok.status).to.equal(200);
      expect(ok.body.token).to.be.a('string');
    });

    it('when a correct password follows failures, then the user counter starts again', async () => {
      const user = uniqueId('reset');
      await api.register(user, 'EU');
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 2; i++) expect((await login(user, 'wrong password', `10.2.0.${round}`)).status).to.equal(401);
        expect((await login(user, PASSWORD, `10.2.0.${round}`)).status).to.equal(200);
      }
    });

    it('when guesses for one user arrive all at once, then only as many passwords are checked as failures are allowed', async () => {
      const user = uniqueId('burst');
      await api.register(user, 'ASIA');
      const rs = await Promise.all(Array.from({ length: 30 }, (_, i) => login(user, 'wrong password', `10.3.0.${i}`)));
      const statuses = rs.map((r) => r.status);
      // Every attempt is counted before its hash: the 4th and later are refused without one.
      expect(statuses.filter((s) => s === 401)).to.have.length(3);
      expect(statuses.filter((s) => s === 429)).to.have.length(27);
    });

    it('when one client IP fails for many user ids, then that IP is refused while others still log in', async () => {
      const users = Array.from({ length: 7 }, () => uniqueId('ipx'));
      for (const u of users.slice(0, 6)) expect((await login(u, 'wrong password', '10.4.0.1')).status).to.equal(401);
      expect((await login(users[6]!, 'wrong password', '10.4.0.1')).status).to.equal(429);
      expect((await login(users[6]!, 'wrong password', '10.4.0.2')).status).to.equal(401);
    });
  });

  describe('password hashing slots', () => {
    it('when every slot is busy and the queue is full, then the next check is refused at once with 503, and waiting ones run in turn', async () => {
      const slots = new HashSlots(1, 1);
      const gates: Array<() => void> = [];
      const job = () => new Promise<string>((resolve) => gates.push(() => resolve('done')));
      const first = slots.run(job);
      const second = slots.run(job);
      expect(slots.load()).to.deep.equal({ running: 1, waiting: 1 });
      const third = await slots.run(job).then(
        () => 'ran',
        (e: { code?: string; details?: { retry_after?: number } }) => `${e.code} ${e.details?.retry_after}`,
      );
      expect(third).to.equal('unavailable 1');
      gates.shift()!();
      expect(await first).to.equal('done');
      await sleep(0);
      expect(slots.load()).to.deep.equal({ running: 1, waiting: 0 });
      gates.shift()!();
      expect(await second).to.equal('done');
      expect(slots.load()).to.deep.equal({ running: 0, waiting: 0 });
    });
  });

  describe('a shard that is down', () => {
    let svc: TestService;
    let api: Client;
    let eu: string;
    before(async () => {
      const base = await startService();
      const dead = `redis://127.0.0.1:${await freePort()}`;
      const topology = { ...base.topology, shards: base.topology.shards.map((s) => (s.id === 'asia' ? { ...s, redis: { kind: 'server' as const, url: dead } } : s)) };
      // Same key prefix: the players registered on `base` are on the live shards.
      eu = uniqueId('eu');
      await new Client(base.url).register(eu, 'EU', { initialScore: 50 });
      await new Client(base.url).register(uniqueId('na'), 'NA', { initialScore: 70 });
      svc = await startService({ TOPOLOGY: topologyJson(topology), KEY_PREFIX: base.config.keyPrefix, REDIS_COMMAND_TIMEOUT_MS: '300' });
      await base.stop();
      api = new Client(svc.url);
    });
    after(async () => svc?.stop());

    it('when a GLOBAL read needs it, then 503 unavailable naming it with Retry-After, unless a partial answer is asked for', async () => {
      for (const path of ['/top?region=GLOBAL', `/rank/${eu}?region=GLOBAL`, `/around/${eu}?region=GLOBAL`]) {
        const r = await api.get(path);
        expect(r.status, path).to.equal(503);
        expect(r.body, path).to.deep.include({ error: 'unavailable', shard: 'asia', retry_after: 1 });
        expect(r.headers.get('retry-after'), path).to.equal('1');
      }
      const top = await api.get('/top?region=GLOBAL&partial=true');
      expect(top.status).to.equal(200);
      expect(top.body).to.deep.include({ partial: true, missing_shards: ['asia'], total: 2 });
      expect(top.body.rows.map((r: { score: number; rank: number }) => [r.rank, r.score])).to.deep.equal([[1, 70], [2, 50]]);
      const rank = await api.get(`/rank/${eu}?region=GLOBAL&partial=1`);
      expect(rank.body).to.deep.include({ found: true, rank: 2, total: 2, partial: true, missing_shards: ['asia'] });
      const around = await api.get(`/around/${eu}?region=GLOBAL&partial=true`);
      expect(around.body).to.deep.include({ partial: true, missing_shards: ['asia'] });
      expect(around.body.self).to.deep.include({ rank: 2, score: 50 });
      expect((await api.get('/top?region=GLOBAL&partial=maybe')).body.error).to.equal('invalid_query');
    });

    it('when a player is found on no shard that answered, then 503 rather than 404 (the player may live on the missing one)', async () => {
      const r = await api.get(`/rank/${uniqueId('somewhere')}?region=GLOBAL&partial=true`);
      expect(r.status).to.equal(503);
      expect(r.body.shard).to.equal('asia');
    });

    it('when a read or write does not need it, then it is answered as before', async () => {
      expect((await api.get('/top?region=EU')).status).to.equal(200);
      expect((await api.get(`/rank/${eu}?region=EU`)).body.rank).to.equal(1);
      const token = signToken({ userId: eu, name: 'E', region: 'EU' }, svc.config.token);
      const w = await api.post('/score/add', { delta: 1 }, { token });
      expect(w.status).to.equal(200);
      expect(w.body).to.deep.include({ score: 51, version: 2, missing_shards: ['asia'] });
      expect(w.body.rank).to.deep.equal({ region: 1, global: null });
      const store = svc.deps.stores.get('eu');
      expect(await mainEntry(store.client, store.keys, eu)).to.deep.include({ score: 51, version: 2 });
    });
  });

  describe('a shard that stalls', () => {
    let redis: RedisProcess;
    let dir: string;
    let svc: TestService;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'lb-stall-'));
      redis = await startRedis({ dir, name: 'stall' });
      const base = await startService();
      const topology = { ...base.topology, shards: base.topology.shards.map((s) => (s.id === 'eu' ? { ...s, redis: { kind: 'server' as const, url: `redis://127.0.0.1:${redis.port}` } } : s)) };
      await base.stop();
      svc = await startService({ TOPOLOGY: topologyJson(topology), REDIS_COMMAND_TIMEOUT_MS: '400' });
    });
    after(async () => {
      if (redis?.running()) process.kill(redis.pid, 'SIGCONT');
      await svc?.stop();
      await redis?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('when a write times out while the shard is stopped, then it is answered 503 and stays unapplied after the shard resumes', async () => {
      const api = new Client(svc.url);
      const user = uniqueId('stall');
      const token = await api.register(user, 'EU', { initialScore: 5 });
      const store = svc.deps.stores.get('eu');
      // Registration takes no token from the buckets, so its board write is
      // the first call to reach the stopped shard: the script itself waits
      // in the shard's socket (a score write would stop at the limiter).
      const late = uniqueId('late');
      process.kill(redis.pid, 'SIGSTOP');
      let w;
      let reg;
      try {
        [w, reg] = await Promise.all([
          api.post('/score/add', { delta: 1 }, { token }),
          api.post('/auth/register', { user_id: late, name: 'Late', region: 'EU', password: PASSWORD }),
        ]);
      } finally {
        process.kill(redis.pid, 'SIGCONT');
      }
      for (const r of [w, reg]) {
        expect(r.status).to.equal(503);
        expect(r.body).to.deep.include({ error: 'unavailable', shard: 'eu' });
        expect(r.body.in_doubt).to.equal(undefined);
      }
      // Both calls were in the shard's socket and ran on resume: past their deadline, they changed nothing.
      await store.ping();
      expect(await mainEntry(store.client, store.keys, user)).to.deep.include({ score: 5, version: 1 });
      expect(await mainEntry(store.client, store.keys, late)).to.deep.equal({ score: null, version: null, name: null, region: null });
      expect(await svc.deps.accountsRepo.findAnywhere(DEFAULT_PROJECT, late)).to.equal(undefined);
      const again = await api.post('/score/add', { delta: 1 }, { token });
      expect(again.body).to.deep.include({ score: 6, version: 2 });
    });
  });
});
