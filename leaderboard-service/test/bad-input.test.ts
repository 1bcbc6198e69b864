import { expect } from 'chai';
import { uniqueId } from '@lb/devtools/testing';
import { Client, startService, type TestService } from './support/service.js';

/**
 * Every endpoint, fed malformed JSON, wrong types, huge bodies, overlong
 * strings and out-of-range numbers: always a 4xx with an error code.
 */
describe('leaderboard-service bad input', () => {
  let svc: TestService;
  let api: Client;
  let token: string;
  let user: string;

  before(async () => {
    svc = await startService();
    api = new Client(svc.url);
    user = uniqueId('bad');
    token = await api.register(user, 'EU', { initialScore: 5 });
  });
  after(async () => svc?.stop());

  const expect4xx = (r: { status: number; body: any }, code?: string) => {
    expect(r.status, JSON.stringify(r.body)).to.be.within(400, 499);
    expect(r.body).to.be.an('object');
    expect(r.body.error).to.be.a('string');
    expect(r.body.message).to.be.a('string');
    if (code) expect(r.body.error).to.equal(code);
  };

  const posts = ['/auth/register', '/auth/login', '/score/create', '/score/update', '/score/add'];
  const huge = JSON.stringify({ user_id: 'x', name: 'y'.repeat(100_000) });

  for (const path of posts) {
    it(`when ${path} gets malformed JSON, a huge body, or a non-object, then 4xx with a code`, async () => {
      expect4xx(await api.request('POST', path, { raw: '{"user_id": ', token }), 'invalid_json');
      expect4xx(await api.request('POST', path, { raw: huge, token }), 'payload_too_large');
      expect4xx(await api.request('POST', path, { raw: '[1,2,3]', token }));
      expect4xx(await api.request('POST', path, { raw: '"just a string"', token }));
      expect4xx(await api.request('POST', path, { raw: 'null', token }));
      expect4xx(await api.request('POST', path, { raw: 'user_id=x', token, headers: { 'content-type': 'application/x-www-form-urlencoded' } }));
    });
  }

  const registerCases: [string, Record<string, unknown>, string][] = [
    ['user_id missing', { name: 'n', region: 'EU', password: 'password1' }, 'user_id'],
    ['user_id too long', { user_id: 'u'.repeat(65), name: 'n', region: 'EU', password: 'password1' }, 'user_id'],
    ['user_id with a space', { user_id: 'a b', name: 'n', region: 'EU', password: 'password1' }, 'user_id'],
    ['user_id a number', { user_id: 12, name: 'n', region: 'EU', password: 'password1' }, 'user_id'],
    ['name too long', { user_id: 'ok', name: 'n'.repeat(201), region: 'EU', password: 'password1' }, 'name'],
    ['name empty', { user_id: 'ok', name: '', region: 'EU', password: 'password1' }, 'name'],
    ['name with control characters', { user_id: 'ok', name: 'a\u0000b', region: 'EU', password: 'password1' }, 'name'],
    ['name an object', { user_id: 'ok', name: { a: 1 }, region: 'EU', password: 'password1' }, 'name'],
    ['password short', { user_id: 'ok', name: 'n', region: 'EU', password: 'short' }, 'password'],
    ['password too long', { user_id: 'ok', name: 'n', region: 'EU', password: 'p'.repeat(129) }, 'password'],
    ['region missing', { user_id: 'ok', name: 'n', password: 'password1' }, 'region'],
    ['region a number', { user_id: 'ok', name: 'n', region: 3, password: 'password1' }, 'region'],
    ['initialScore negative', { user_id: 'ok', name: 'n', region: 'EU', password: 'password1', initialScore: -1 }, 'initialScore'],
    ['initialScore a float', { user_id: 'ok', name: 'n', region: 'EU', password: 'password1', initialScore: 1.5 }, 'initialScore'],
    ['initialScore a string', { user_id: 'ok', name: 'n', region: 'EU', password: 'password1', initialScore: '5' }, 'initialScore'],
    ['initialScore above MAX_SCORE_DELTA', { user_id: 'ok', name: 'n', region: 'EU', password: 'password1', initialScore: 1e15 }, 'initialScore'],
  ];
  for (const [what, body, field] of registerCases) {
    it(`when register has ${what}, then 400 invalid_payload naming ${field}`, async () => {
      const r = await api.post('/auth/register', body);
      expect4xx(r, 'invalid_payload');
      expect(r.body.field).to.equal(field);
    });
  }

  it('when register names an unknown region, then 400 unknown_region', async () => {
    expect4xx(await api.post('/auth/register', { user_id: uniqueId('r'), name: 'n', region: 'MARS', password: 'password1' }), 'unknown_region');
  });

  it('when login has wrong types, then 400 invalid_payload', async () => {
    expect4xx(await api.post('/auth/login', { user_id: 5, password: 'x' }), 'invalid_payload');
    expect4xx(await api.post('/auth/login', { user_id: 'abc', password: ['x'] }), 'invalid_payload');
    expect4xx(await api.post('/auth/login', { user_id: 'abc', password: 'p'.repeat(5000) }), 'invalid_payload');
  });

  const writeCases: [string, string, unknown, string][] = [
    ['update', '/score/update', {}, 'invalid_payload'],
    ['update', '/score/update', { score: '10' }, 'invalid_payload'],
    ['update', '/score/update', { score: 1.25 }, 'invalid_payload'],
    ['update', '/score/update', { score: null }, 'invalid_payload'],
    ['update', '/score/update', { score: 1e300 }, 'invalid_payload'],
    ['update', '/score/update', { score: -5 }, 'score_out_of_range'],
    ['add', '/score/add', { delta: 0 }, 'invalid_payload'],
    ['add', '/score/add', { delta: 1e12 }, 'invalid_payload'],
    ['add', '/score/add', { delta: -1e12 }, 'invalid_payload'],
    ['add', '/score/add', { delta: true }, 'invalid_payload'],
    ['add', '/score/add', {}, 'invalid_payload'],
    ['create', '/score/create', { initialScore: -1 }, 'invalid_payload'],
    ['create', '/score/create', { initialScore: 'x' }, 'invalid_payload'],
    ['create', '/score/create', { region: 17 }, 'invalid_payload'],
    ['create', '/score/create', { region: 'MARS' }, 'unknown_region'],
  ];
  for (const [, path, body, code] of writeCases) {
    it(`when ${path} gets ${JSON.stringify(body)}, then 4xx ${code} and the score is unchanged`, async () => {
      expect4xx(await api.post(path, body, { token }), code);
      expect((await api.get(`/rank/${user}`)).body.score).to.equal(5);
    });
  }

  it('when the Idempotency-Key is too long or has control characters, then 400', async () => {
    expect4xx(await api.post('/score/add', { delta: 1 }, { token, headers: { 'idempotency-key': 'k'.repeat(129) } }), 'invalid_payload');
    expect4xx(await api.post('/score/add', { delta: 1 }, { token, headers: { 'idempotency-key': 'a b' } }), 'invalid_payload');
  });

  const reads: [string, string][] = [
    ['/top?limit=0', 'invalid_query'],
    ['/top?limit=1001', 'invalid_query'],
    ['/top?limit=abc', 'invalid_query'],
    ['/top?limit=99999999999999999999', 'invalid_query'],
    ['/top?limit=1&limit=2', 'invalid_query'],
    ['/top?region=MARS', 'unknown_region'],
    ['/top?region=EU&region=NA', 'unknown_region'],
    ['/score?region=' + 'x'.repeat(5000), 'unknown_region'],
    ['/rank/' + 'u'.repeat(65), 'invalid_payload'],
    ['/rank/bad%20id', 'invalid_payload'],
    ['/rank/ok?region=MARS', 'unknown_region'],
    ['/around/ok?range=0', 'invalid_query'],
    ['/around/ok?range=101', 'invalid_query'],
    ['/around/ok?range=-1', 'invalid_query'],
    ['/score/around/%ZZ', 'invalid_payload'],
  ];
  for (const [path, code] of reads) {
    it(`when GET ${path.slice(0, 60)} is asked, then 4xx ${code}`, async () => {
      const r = await api.get(path);
      expect(r.status, JSON.stringify(r.body)).to.be.within(400, 499);
      expect(r.body.error).to.be.a('string');
      if (code) expect(r.body.error).to.equal(code);
    });
  }
});
