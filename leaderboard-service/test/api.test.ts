import { expect } from 'chai';
import { DEFAULT_PROJECT } from '@lb/common/contracts';
import { signToken, topologyJson } from '@lb/common/platform';
import { projectDb, uniqueId } from '@lb/devtools/testing';
import { Client, startService, type TestService } from './support/service.js';
import { mainEntry } from '../../test/support/main-entry.js';

describe('leaderboard-service API', function () {
  let svc: TestService;
  let api: Client;
  const id = (p: string) => uniqueId(p);

  before(async () => {
    svc = await startService();
    api = new Client(svc.url);
  });
  after(async () => svc?.stop());

  describe('accounts', () => {
    it('when a player registers, then 201 returns a token and the account is in the home shard Postgres', async () => {
      const user = id('reg');
      const r = await api.post('/auth/register', { user_id: user, name: 'Alice', region: 'eu', password: 'password123', initialScore: 42 });
      expect(r.status).to.equal(201);
      expect(r.body.token).to.be.a('string');
      expect(r.body.user).to.deep.equal({ user_id: user, name: 'Alice', region: 'EU', score: 42 });
      const row = await projectDb(svc.deps.pools, 'eu').query('SELECT name, region, password_hash FROM accounts WHERE user_id = $1', [user]);
      expect(row.rows[0].name).to.equal('Alice');
      expect(row.rows[0].password_hash).to.match(/^\$argon2id\$/);
      expect(row.rows[0].password_hash).to.not.contain('password123');
      const rank = await api.get(`/rank/${user}?region=EU`);
      expect(rank.body.score).to.equal(42);
    });

    it('when players register without initialScore in every region and GLOBAL, then each is on its boards at once with score 0 and competition ranks', async () => {
      const fresh = await startService();
      try {
        const c = new Client(fresh.url);
        const regions = ['NA', 'EU', 'ASIA', 'GLOBAL'];
        const players = regions.flatMap((region) => [`a-${region}`, `b-${region}`].map((p) => ({ user: id(p), region })));
        for (const p of players) {
          const r = await c.post('/auth/register', { user_id: p.user, name: p.user, region: p.region, password: 'password123' });
          expect(r.status).to.equal(201);
          expect(r.body.user.score).to.equal(0);
        }
        for (const p of players) {
          const g = await c.get(`/rank/${p.user}?region=GLOBAL`);
          expect(g.status, p.user).to.equal(200);
          expect(g.body).to.deep.include({ score: 0, rank: 1, total: 8, percentile: 0 });
          if (p.region !== 'GLOBAL') {
            const r = await c.get(`/rank/${p.user}?region=${p.region}`);
            expect(r.body).to.deep.include({ score: 0, rank: 1, total: 2 });
          }
        }
        // One player scores: every zero-score player now shares rank 2.
        const token = (await c.post('/auth/login', { user_id: players[0]!.user, password: 'password123' })).body.token as string;
        expect((await c.post('/score/add', { delta: 5 }, { token })).status).to.equal(200);
        const top = await c.get('/top?region=GLOBAL&limit=10');
        expect(top.body.total).to.equal(8);
        expect(top.body.rows[0]).to.deep.include({ rank: 1, user_id: players[0]!.user, score: 5 });
        const rest = top.body.rows.slice(1);
        expect(rest.map((r: { rank: number }) => r.rank)).to.deep.equal(Array(7).fill(2));
        expect(rest.map((r: { user_id: string }) => r.user_id)).to.deep.equal(players.slice(1).map((p) => p.user).sort());
        const na = await c.get('/top?region=NA');
        expect(na.body.rows.map((r: { rank: number; score: number }) => [r.rank, r.score])).to.deep.equal([[1, 5], [2, 0]]);
        const around = await c.get(`/around/${players[7]!.user}?region=GLOBAL&range=1`);
        expect(around.status).to.equal(200);
        expect(around.body.self).to.deep.include({ rank: 2, score: 0 });
        // Registration's event is in the outbox, on its way to Postgres.
        const na0 = fresh.deps.stores.get('na');
        expect(Number(await na0.client.hExists(na0.keys.outbox, `default/default/main/all/${players[0]!.user}#1`))).to.equal(1);
        // /score/create on the existing entry changes nothing.
        const again = await c.post('/score/create', { initialScore: 9 }, { token });
        expect(again.body).to.deep.include({ score: 5, version: 2 });
      } finally {
        await fresh.stop();
      }
    });

    it('when the same user_id registers again in another region, then 409 user_exists', async () => {
      const user = id('dup');
      await api.register(user, 'NA');
      const again = await api.post('/auth/register', { user_id: user, name: 'B', region: 'ASIA', password: 'password123' });
      expect(again.status).to.equal(409);
      expect(again.body).to.deep.include({ error: 'user_exists' });
    });

    it('when two registrations of one user_id race, then exactly one wins', async () => {
      const user = id('race');
      const results = await Promise.all(
        ['NA', 'EU', 'ASIA', 'GLOBAL', 'NA', 'EU'].map((region) =>
          api.post('/auth/register', { user_id: user, name: 'R', region, password: 'password123' }),
        ),
      );
      expect(results.filter((r) => r.status === 201)).to.have.length(1);
      expect(results.filter((r) => r.status === 409)).to.have.length(5);
    });

    it('when a player logs in, then 200 returns a token and the current score; wrong password and unknown user answer alike', async () => {
      const user = id('login');
      await api.register(user, 'ASIA', { initialScore: 7 });
      const ok = await api.post('/auth/login', { user_id: user, password: 'correct horse' });
      expect(ok.status).to.equal(200);
      expect(ok.body.user).to.deep.equal({ user_id: user, name: `Name ${user}`, region: 'ASIA', score: 7 });
      const wrong = await api.post('/auth/login', { user_id: user, password: 'wrong horse!' });
      const unknown = await api.post('/auth/login', { user_id: id('nobody'), password: 'correct horse' });
      expect(wrong.status).to.equal(401);
      expect(unknown.status).to.equal(401);
      expect(wrong.body).to.deep.equal(unknown.body);
      expect(wrong.body.error).to.equal('invalid_credentials');
    });

    it('when the login token is used, then it writes the score of that player', async () => {
      const user = id('tok');
      await api.register(user, 'NA');
      const { body } = await api.post('/auth/login', { user_id: user, password: 'correct horse' });
      const w = await api.post('/score/update', { score: 5 }, { token: body.token });
      expect(w.status).to.equal(200);
      expect(w.body.user_id).to.equal(user);
    });
  });

  describe('score writes', () => {
    it('when create, update and add are called, then each answers the card with version and ranks', async () => {
      const user = id('w');
      // A token for a player with no board entry yet (registration would make one).
      const token = signToken({ userId: user, name: `Name ${user}`, region: 'EU' }, svc.config.token);
      const c = await api.post('/score/create', { region: 'eu', initialScore: 10 }, { token });
      expect(c.status).to.equal(200);
      expect(c.body).to.deep.include({ ok: true, user_id: user, region: 'EU', score: 10, version: 1 });
      expect(c.body.rank.region).to.be.a('number');
      expect(c.body.rank.global).to.be.a('number');
      const again = await api.post('/score/create', { initialScore: 99 }, { token });
      expect(again.body).to.deep.include({ score: 10, version: 1 });
      const u = await api.post('/score/update', { score: 100 }, { token });
      expect(u.body).to.deep.include({ score: 100, version: 2 });
      const a = await api.post('/score/add', { delta: -30 }, { token });
      expect(a.body).to.deep.include({ score: 70, version: 3 });
      const eu = svc.deps.stores.get('eu');
      expect(await mainEntry(eu.client, eu.keys, user)).to.deep.equal({ name: `Name ${user}`, region: 'EU', score: 70, version: 3 });
    });

    it('when a GLOBAL-only player writes, then rank.region is null and the player is on no regional board', async () => {
      const user = id('g');
      const token = await api.register(user, 'GLOBAL');
      const w = await api.post('/score/add', { delta: 5 }, { token });
      expect(w.body.rank.region).to.equal(null);
      expect(w.body.region).to.equal('GLOBAL');
      for (const region of ['NA', 'EU', 'ASIA']) {
        const r = await api.get(`/rank/${user}?region=${region}`);
        expect(r.status).to.equal(404);
      }
      expect((await api.get(`/rank/${user}`)).body.score).to.equal(5);
    });

    it('when create names another region, then 400 region_mismatch and nothing changes', async () => {
      const token = await api.register(id('mm'), 'NA');
      const r = await api.post('/score/create', { region: 'EU', initialScore: 5 }, { token });
      expect(r.status).to.equal(400);
      expect(r.body.error).to.equal('region_mismatch');
    });

    it('when a result leaves [0, MAX_SCORE], then 400 score_out_of_range and nothing changes', async () => {
      const user = id('oor');
      const token = await api.register(user, 'ASIA', { initialScore: 3 });
      const neg = await api.post('/score/add', { delta: -4 }, { token });
      expect(neg.status).to.equal(400);
      expect(neg.body.error).to.equal('score_out_of_range');
      const big = await api.post('/score/update', { score: Number.MAX_SAFE_INTEGER + 1 }, { token });
      expect(big.status).to.equal(400);
      const negSet = await api.post('/score/update', { score: -1 }, { token });
      expect(negSet.body.error).to.equal('score_out_of_range');
      const r = await api.get(`/rank/${user}?region=ASIA`);
      expect(r.body.score).to.equal(3);
      const asia = svc.deps.stores.get('asia');
      expect((await mainEntry(asia.client, asia.keys, user)).version).to.equal(1);
    });

    it('when a score reaches MAX_SCORE (2^53-1), then it is stored and read back exactly', async () => {
      const user = id('max');
      const token = await api.register(user, 'NA');
      const w = await api.post('/score/update', { score: Number.MAX_SAFE_INTEGER }, { token });
      expect(w.body.score).to.equal(Number.MAX_SAFE_INTEGER);
      expect((await api.get(`/rank/${user}?region=NA`)).body.score).to.equal(Number.MAX_SAFE_INTEGER);
      expect((await api.post('/score/add', { delta: 1 }, { token })).body.error).to.equal('score_out_of_range');
      await api.post('/score/update', { score: 0 }, { token });
    });

    it('when an Idempotency-Key is repeated, then the first answer comes back and the write is applied once', async () => {
      const user = id('idem');
      const token = await api.register(user, 'EU');
      const headers = { 'idempotency-key': `k-${user}` };
      const first = await api.post('/score/add', { delta: 5 }, { token, headers });
      const second = await api.post('/score/add', { delta: 5 }, { token, headers });
      expect(second.status).to.equal(200);
      expect(second.body).to.deep.equal(first.body);
      expect((await api.get(`/rank/${user}?region=EU`)).body.score).to.equal(5);
      const other = await api.post('/score/add', { delta: 6 }, { token, headers });
      expect(other.status).to.equal(422);
      expect(other.body.error).to.equal('idempotency_key_reuse');
    });

    it('when concurrent retries share an Idempotency-Key, then exactly one is applied', async () => {
      const user = id('idemc');
      const token = await api.register(user, 'ASIA');
      const headers = { 'idempotency-key': 'same-key' };
      const rs = await Promise.all(Array.from({ length: 10 }, () => api.post('/score/add', { delta: 1 }, { token, headers })));
      for (const r of rs) expect(r.status).to.equal(200);
      // Version 1 is the registration's.
      expect(new Set(rs.map((r) => r.body.version))).to.deep.equal(new Set([2]));
      expect((await api.get(`/rank/${user}?region=ASIA`)).body.score).to.equal(1);
    });

    it('when many adds race for one player, then none is lost', async () => {
      const user = id('race-add');
      const token = await api.register(user, 'NA');
      await Promise.all(Array.from({ length: 50 }, () => api.post('/score/add', { delta: 2 }, { token })));
      const r = await api.get(`/rank/${user}?region=NA`);
      expect(r.body.score).to.equal(100);
    });
  });

  describe('reads', () => {
    // A private region-free world: players registered here only, on GLOBAL via EU/NA/ASIA.
    let svc2: TestService;
    let api2: Client;
    before(async () => {
      svc2 = await startService();
      api2 = new Client(svc2.url);
      // Ties on purpose: scores 50, 40, 40, 40, 30 spread over three shards.
      const players: [string, string, number][] = [
        ['ra', 'EU', 50], ['rb', 'NA', 40], ['rc', 'ASIA', 40], ['rd', 'EU', 40], ['re', 'GLOBAL', 30],
      ];
      for (const [x, region, score] of players) await api2.register(u(x), region, { initialScore: score });
    });
    after(async () => svc2?.stop());
    const u = (x: string) => `${x}-${svc2.config.keyPrefix}`;

    it('when top is read on GLOBAL, then ties share a competition rank and break by user_id', async () => {
      const r = await api2.get('/top?region=global&limit=10');
      expect(r.status).to.equal(200);
      expect(r.body.region).to.equal('GLOBAL');
      expect(r.body.total).to.equal(5);
      expect(r.body.rows.map((x: any) => [x.rank, x.user_id, x.score])).to.deep.equal([
        [1, u('ra'), 50], [2, u('rb'), 40], [2, u('rc'), 40], [2, u('rd'), 40], [5, u('re'), 30],
      ]);
      expect(r.body.rows[0].name).to.equal(`Name ${u('ra')}`);
    });

    it('when limit is above the board size, then every player comes back; the old /score path answers the same', async () => {
      const a = await api2.get('/top?region=EU&limit=1000');
      expect(a.body.rows.map((x: any) => x.user_id)).to.deep.equal([u('ra'), u('rd')]);
      const b = await api2.get('/score?region=EU&limit=1000');
      expect(b.body).to.deep.equal(a.body);
      expect((await api2.get('/top')).body.rows).to.have.length(5);
    });

    it('when rank is read, then rank, total and percentile follow the definitions', async () => {
      const r = await api2.get(`/rank/${u('rc')}`);
      expect(r.body).to.deep.equal({
        found: true, user_id: u('rc'), name: `Name ${u('rc')}`, region: 'ASIA', board: 'GLOBAL', score: 40, rank: 2, total: 5, percentile: 20,
      });
      const old = await api2.get(`/score/rank/${u('rc')}?region=GLOBAL`);
      expect(old.body).to.deep.equal(r.body);
      const regional = await api2.get(`/rank/${u('rd')}?region=eu`);
      expect(regional.body).to.deep.include({ board: 'EU', rank: 2, total: 2, percentile: 0 });
    });

    it('when a player is unknown, then 404 user_not_found with found: false', async () => {
      const r = await api2.get(`/rank/${u('nobody')}`);
      expect(r.status).to.equal(404);
      expect(r.body).to.deep.include({ error: 'user_not_found', found: false });
      expect((await api2.get(`/around/${u('nobody')}`)).status).to.equal(404);
      expect((await api2.get(`/rank/${u('ra')}?region=NA`)).status).to.equal(404);
    });

    it('when around is read in the middle, at the top, at the bottom and on a board of one, then windows are right', async () => {
      const mid = await api2.get(`/around/${u('rc')}?range=1`);
      expect(mid.body.self).to.deep.equal({ rank: 2, user_id: u('rc'), name: `Name ${u('rc')}`, score: 40 });
      expect(mid.body.around.map((x: any) => [x.rank, x.user_id])).to.deep.equal([[2, u('rb')], [2, u('rd')]]);
      const top = await api2.get(`/around/${u('ra')}?range=2`);
      expect(top.body.around.map((x: any) => x.user_id)).to.deep.equal([u('rb'), u('rc')]);
      const bottom = await api2.get(`/around/${u('re')}?range=2`);
      expect(bottom.body.around.map((x: any) => [x.rank, x.user_id])).to.deep.equal([[2, u('rc')], [2, u('rd')]]);
      const one = await api2.get(`/around/${u('rb')}?region=NA&range=10`);
      expect(one.body).to.deep.equal({ region: 'NA', self: { rank: 1, user_id: u('rb'), name: `Name ${u('rb')}`, score: 40 }, around: [] });
      const old = await api2.get(`/score/around/${u('rc')}?range=1`);
      expect(old.body).to.deep.equal(mid.body);
    });

    it('when a board is empty, then top answers total 0 and no rows', async () => {
      const svc3 = await startService();
      try {
        const r = await new Client(svc3.url).get('/top?region=ASIA');
        expect(r.body).to.deep.equal({ region: 'ASIA', total: 0, rows: [] });
      } finally {
        await svc3.stop();
      }
    });
  });

  describe('operations', () => {
    it('when every shard answers, then /health is 200 and names them all', async () => {
      const r = await api.get('/health');
      expect(r.status).to.equal(200);
      expect(r.body.ok).to.equal(true);
      expect(Object.keys(r.body.redis).sort()).to.deep.equal(['asia', 'eu', 'na']);
      expect(Object.values(r.body.postgres)).to.not.be.empty;
    });

    it('when a Redis shard does not answer, then /health is 503 and names it', async () => {
      const { freePort } = await import('@lb/devtools/infra');
      const dead = `redis://127.0.0.1:${await freePort()}`;
      const topology = { ...svc.topology, shards: svc.topology.shards.map((s) => (s.id === 'asia' ? { ...s, redis: { kind: 'server' as const, url: dead } } : s)) };
      const broken = await startService({ TOPOLOGY: topologyJson(topology), REDIS_COMMAND_TIMEOUT_MS: '300' });
      try {
        const r = await new Client(broken.url).get('/health');
        expect(r.status).to.equal(503);
        expect(r.body.ok).to.equal(false);
        expect(r.body.down).to.deep.equal(['redis:asia']);
        // Registration needs the home shard for the board entry: refused, and nothing remains.
        const deadUser = uniqueId('dead');
        const reg = await new Client(broken.url).post('/auth/register', { user_id: deadUser, name: 'Dead', region: 'ASIA', password: 'correct horse' });
        expect(reg.status).to.equal(503);
        expect(reg.body).to.deep.include({ error: 'unavailable', shard: 'asia', retry_after: 1 });
        expect(reg.headers.get('retry-after')).to.equal('1');
        expect(await broken.deps.accountsRepo.findAnywhere(DEFAULT_PROJECT, deadUser)).to.equal(undefined);
        // Writes to the dead shard fail cleanly with 503, never pass unchecked.
        const token = signToken({ userId: deadUser, name: 'Dead', region: 'ASIA' }, broken.config.token);
        const w = await new Client(broken.url).post('/score/add', { delta: 1 }, { token });
        expect(w.status).to.equal(503);
        expect(w.body.error).to.equal('unavailable');
        // A write homed elsewhere is applied and answered 200; its GLOBAL rank cannot be counted without asia.
        const eu = await new Client(broken.url).register(uniqueId('alive'), 'EU');
        const ok = await new Client(broken.url).post('/score/add', { delta: 1 }, { token: eu });
        expect(ok.status).to.equal(200);
        expect(ok.body.rank.global).to.equal(null);
        expect(ok.body.missing_shards).to.deep.equal(['asia']);
        expect(ok.body.rank.region).to.be.a('number');
      } finally {
        await broken.stop();
      }
    });

    it('when a route does not exist, then 404 not_found in the error shape', async () => {
      const r = await api.get('/nope');
      expect(r.status).to.equal(404);
      expect(r.body).to.have.keys(['error', 'message']);
      expect(r.body.error).to.equal('not_found');
    });

    it('when a request carries X-Request-Id, then it is echoed; otherwise one is made', async () => {
      expect((await api.get('/top', { headers: { 'x-request-id': 'abc-123' } })).headers.get('x-request-id')).to.equal('abc-123');
      expect((await api.get('/top')).headers.get('x-request-id')).to.match(/^[0-9a-f-]{36}$/);
    });
  });
});
