import { createHmac } from 'node:crypto';
import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { uniqueId } from '@lb/devtools/testing';
import { Client, startService, TEST_SECRET, type TestService } from './support/service.js';

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

describe('leaderboard-service security', () => {
  let svc: TestService;
  let api: Client;
  let victim: string;
  let victimToken: string;
  let attacker: string;
  let attackerToken: string;

  before(async () => {
    svc = await startService();
    api = new Client(svc.url);
    victim = uniqueId('victim');
    attacker = uniqueId('attacker');
    victimToken = await api.register(victim, 'EU', { initialScore: 10 });
    attackerToken = await api.register(attacker, 'NA', { initialScore: 1 });
  });
  after(async () => svc?.stop());

  const victimScore = async () => (await api.get(`/rank/${victim}`)).body.score;
  const claims = () => ({ sub: victim, name: 'V', region: 'EU', iss: 'leaderboard-platform' });

  it('when no token is sent, then 401 missing_token', async () => {
    const r = await api.post('/score/add', { delta: 1 });
    expect(r.status).to.equal(401);
    expect(r.body.error).to.equal('missing_token');
  });

  const bad: [string, () => string][] = [
    ['expired', () => jwt.sign({ ...claims(), exp: Math.floor(Date.now() / 1000) - 10 }, TEST_SECRET, { algorithm: 'HS256' })],
    ['signed with the wrong secret', () => jwt.sign(claims(), 'x'.repeat(40), { algorithm: 'HS256', expiresIn: 60 })],
    ['alg none', () => `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ ...claims(), exp: Math.floor(Date.now() / 1000) + 60 })}.`],
    [
      'HS512 with the right secret (algorithm not pinned)',
      () => jwt.sign(claims(), TEST_SECRET, { algorithm: 'HS512', expiresIn: 60 }),
    ],
    [
      'tampered (payload changed, signature kept)',
      () => {
        const t = jwt.sign({ ...claims(), sub: attacker }, TEST_SECRET, { algorithm: 'HS256', expiresIn: 60 });
        const [h, , s] = t.split('.');
        return `${h}.${b64({ ...claims(), exp: Math.floor(Date.now() / 1000) + 60 })}.${s}`;
      },
    ],
    ['without exp', () => jwt.sign(claims(), TEST_SECRET, { algorithm: 'HS256' })],
    ['from another issuer', () => jwt.sign({ ...claims(), iss: 'evil' }, TEST_SECRET, { algorithm: 'HS256', expiresIn: 60 })],
    [
      'hand-made HS256 whose sub is not a user id',
      () => {
        const h = b64({ alg: 'HS256', typ: 'JWT' });
        const p = b64({ ...claims(), sub: '../../etc', exp: Math.floor(Date.now() / 1000) + 60 });
        return `${h}.${p}.${createHmac('sha256', TEST_SECRET).update(`${h}.${p}`).digest('base64url')}`;
      },
    ],
    ['garbage', () => 'not-a-token'],
  ];
  for (const [what, make] of bad) {
    it(`when the token is ${what}, then 401 invalid_token and nothing changes`, async () => {
      const before = await victimScore();
      const r = await api.post('/score/add', { delta: 1000 }, { token: make() });
      expect(r.status).to.equal(401);
      expect(r.body.error).to.equal('invalid_token');
      expect(await victimScore()).to.equal(before);
    });
  }

  it("when a player names another player in the body or in identity headers, then the other player's score does not change", async () => {
    const before = await victimScore();
    const forged = await api.post('/score/update', { score: 999, user_id: victim }, { token: attackerToken });
    expect(forged.status).to.equal(403);
    expect(forged.body.error).to.equal('forbidden');
    const headers = { 'x-user-id': victim, 'x-user': victim, 'x-forwarded-user': victim, 'x-authenticated-user': victim };
    const viaHeaders = await api.post('/score/update', { score: 999 }, { token: attackerToken, headers });
    expect(viaHeaders.status).to.equal(200);
    expect(viaHeaders.body.user_id).to.equal(attacker);
    const viaRegion = await api.post('/score/create', { region: 'EU' }, { token: attackerToken });
    expect(viaRegion.status).to.equal(400);
    expect(await victimScore()).to.equal(before);
  });

  it('when the Authorization scheme is not Bearer, then 401 invalid_token', async () => {
    const r = await api.post('/score/add', { delta: 1 }, { headers: { authorization: `Basic ${victimToken}` } });
    expect(r.status).to.equal(401);
    expect(r.body.error).to.equal('invalid_token');
  });
});
