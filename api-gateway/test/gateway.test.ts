/**
 * The gateway in front of three real leaderboard-service replicas sharing
 * one data set. Each replica sits behind a counting pass-through proxy, so
 * the tests can tell exactly which requests reached a replica.
 */
import { createHmac } from 'node:crypto';
import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { uniqueId } from '@lb/devtools/testing';
import { Client, type TestService } from '../../leaderboard-service/test/support/service.js';
import { startGateway, TEST_SECRET, type TestGateway } from './support/gateway.js';
import { startReplicas } from './support/replicas.js';
import { startCountingProxy, type TestUpstream } from './support/upstreams.js';

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

describe('api-gateway in front of three real replicas', () => {
  let replicas: TestService[];
  let counters: TestUpstream[];
  let gw: TestGateway;
  let api: Client;

  before(async () => {
    replicas = await startReplicas(3);
    counters = await Promise.all(replicas.map((r) => startCountingProxy(r.url)));
    // Cold replicas can take a while (argon2, first Postgres connections): no timeouts here.
    gw = await startGateway(counters.map((c) => c.url), { UPSTREAM_TIMEOUT_MS: '10000' });
    api = new Client(gw.url);
  });
  after(async () => {
    await gw?.stop();
    for (const c of counters ?? []) await c.stop();
    for (const r of replicas ?? []) await r.stop();
  });
  const reachedReplicas = () => counters.flatMap((c) => c.requests.map((r) => `${r.method} ${r.url}`));
  beforeEach(() => counters.forEach((c) => (c.requests.length = 0)));

  it('when reads go through the gateway, then they spread evenly over all three replicas', async () => {
    const upstreams: string[] = [];
    const servedBy: string[] = [];
    for (let i = 0; i < 9; i++) {
      const r = await api.get('/top?limit=10&region=EU');
      expect(r.status).to.equal(200);
      upstreams.push(r.headers.get('x-upstream')!);
      servedBy.push(r.headers.get('x-served-by')!);
    }
    for (const c of counters) expect(upstreams.filter((u) => u === c.url), c.url).to.have.length(3);
    expect(new Set(servedBy)).to.deep.equal(new Set(['replica-1', 'replica-2', 'replica-3']));
  });

  it('when a player registers, logs in, writes and reads through the gateway, then every replica serves the same data', async () => {
    const id = uniqueId('gwp');
    const reg = await api.post('/auth/register', { user_id: id, name: 'Gate Way', region: 'EU', password: 'correct horse', initialScore: 10 });
    expect(reg.status, JSON.stringify(reg.body)).to.equal(201);
    const login = await api.post('/auth/login', { user_id: id, password: 'correct horse' });
    expect(login.status).to.equal(200);
    const token = login.body.token as string;
    const add = await api.post('/score/add', { delta: 32 }, { token });
    expect(add.status, JSON.stringify(add.body)).to.equal(200);
    const update = await api.post('/score/update', { score: 99 }, { token });
    expect(update.status, JSON.stringify(update.body)).to.equal(200);
    const seen = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const rank = await api.get(`/rank/${id}?region=EU`);
      expect(rank.status).to.equal(200);
      expect(rank.body.score).to.equal(99);
      seen.add(rank.headers.get('x-upstream')!);
    }
    expect(seen.size, 'read from every replica').to.equal(3);
    const around = await api.get(`/around/${id}?region=EU&range=1`);
    expect(around.status).to.equal(200);
    expect(JSON.stringify(around.body)).to.include(id);
  });

  it('when the replica answers an error, then its JSON error and status pass through unchanged', async () => {
    const r = await api.post('/auth/login', { user_id: uniqueId('nobody'), password: 'whatever' });
    expect(r.status).to.equal(401);
    expect(r.body.error).to.equal('invalid_credentials');
    expect(r.headers.get('x-upstream')).to.be.oneOf(counters.map((c) => c.url));
  });

  describe('token checks of score writes', () => {
    const claims = () => ({ sub: 'victim_1', name: 'V', region: 'EU', iss: 'leaderboard-platform' });
    const now = () => Math.floor(Date.now() / 1000);
    const bad: [string, () => string | undefined, string][] = [
      ['missing', () => undefined, 'missing_token'],
      ['expired', () => jwt.sign({ ...claims(), exp: now() - 10 }, TEST_SECRET, { algorithm: 'HS256' }), 'invalid_token'],
      ['alg none', () => `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ ...claims(), exp: now() + 60 })}.`, 'invalid_token'],
      ['signed with another secret', () => jwt.sign(claims(), 'y'.repeat(40), { algorithm: 'HS256', expiresIn: 60 }), 'invalid_token'],
      ['HS512 with the right secret', () => jwt.sign(claims(), TEST_SECRET, { algorithm: 'HS512', expiresIn: 60 }), 'invalid_token'],
      ['from another issuer', () => jwt.sign({ ...claims(), iss: 'evil' }, TEST_SECRET, { algorithm: 'HS256', expiresIn: 60 }), 'invalid_token'],
      [
        'hand-made with a bad subject',
        () => {
          const h = b64({ alg: 'HS256', typ: 'JWT' });
          const p = b64({ ...claims(), sub: '../x', exp: now() + 60 });
          return `${h}.${p}.${createHmac('sha256', TEST_SECRET).update(`${h}.${p}`).digest('base64url')}`;
        },
        'invalid_token',
      ],
    ];
    for (const [what, make, code] of bad) {
      it(`when the token is ${what}, then the gateway answers 401 ${code} and no replica sees the request`, async () => {
        for (const path of ['/score/add', '/score/update', '/score/create']) {
          const r = await api.post(path, { delta: 1, score: 1 }, { token: make() });
          expect(r.status, path).to.equal(401);
          expect(r.body.error).to.equal(code);
          expect(r.headers.get('x-upstream')).to.equal('gateway');
        }
        expect(reachedReplicas()).to.deep.equal([]);
      });
    }

    it('when the token is valid, then the write does reach exactly one replica (the counters work)', async () => {
      const id = uniqueId('gwv');
      const token = await api.register(id, 'NA');
      counters.forEach((c) => (c.requests.length = 0));
      const r = await api.post('/score/add', { delta: 3 }, { token });
      expect(r.status).to.equal(200);
      expect(reachedReplicas()).to.deep.equal(['POST /score/add']);
    });
  });

  it("when the service's /health is asked through the gateway, then the gateway answers with its own view", async () => {
    const r = await api.get('/health');
    expect(r.status).to.equal(200);
    expect(r.body).to.deep.equal({
      ok: true,
      gateway: 'gateway-1',
      upstreams: counters.map((c) => ({ url: c.url, healthy: true, last_error: null })),
    });
    expect(reachedReplicas()).to.deep.equal([]);
  });

  it('when a request id is passed, then the replica receives it and the answer echoes it; otherwise one is generated', async () => {
    const given = await api.get('/top?region=NA', { headers: { 'x-request-id': 'req-abc_123' } });
    expect(given.headers.get('x-request-id')).to.equal('req-abc_123');
    const seen = counters.flatMap((c) => c.requests).map((r) => r.headers['x-request-id']);
    expect(seen).to.deep.equal(['req-abc_123']);
    const made = await api.get('/top?region=NA');
    expect(made.headers.get('x-request-id')).to.match(/^[0-9a-f-]{36}$/);
  });
});
