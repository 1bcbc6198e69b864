/**
 * One HTTP pipeline: every route, on the hot path or on express, answers
 * HEAD, media types, malformed bodies, oversized bodies and request ids the
 * same way.
 */
import http from 'node:http';
import { expect } from 'chai';
import { uniqueId } from '@lb/devtools/testing';
import { Client, startService, type TestService } from './support/service.js';

/** A raw request (fetch will not send a body with HEAD or set some headers). */
function raw(base: string, method: string, path: string, headers: Record<string, string> = {}, body?: string) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const req = http.request(base + path, { method, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('leaderboard-service HTTP pipeline', () => {
  let svc: TestService;
  let token: string;
  let user: string;

  before(async () => {
    svc = await startService();
    user = uniqueId('pipe');
    token = await new Client(svc.url).register(user, 'EU', { initialScore: 3 });
  });
  after(async () => svc?.stop());

  it('when any GET route is asked with HEAD, then it answers the GET status and headers without a body', async () => {
    const paths = [
      '/top?region=EU', '/score?region=GLOBAL', `/rank/${user}?region=EU`, `/score/rank/${user}`, `/around/${user}`, `/score/around/${user}?region=EU`,
      `/history/${user}`, '/health', '/health/live', '/rank/nobody-here', '/top?region=MARS', '/nope',
    ];
    for (const path of paths) {
      const get = await raw(svc.url, 'GET', path);
      const head = await raw(svc.url, 'HEAD', path);
      expect(head.status, path).to.equal(get.status);
      expect(head.body, path).to.equal('');
      expect(head.headers['content-type'], path).to.equal(get.headers['content-type']);
      expect(head.headers['x-request-id'], path).to.be.a('string');
      expect(head.headers['x-served-by'], path).to.equal(svc.config.instanceId);
    }
  });

  const posts = () => [
    { path: '/score/add', auth: true, ok: { delta: 1 } },
    { path: '/score/update', auth: true, ok: { score: 9 } },
    { path: '/score/create', auth: true, ok: {} },
    { path: '/auth/login', auth: false, ok: { user_id: user, password: 'correct horse' } },
    { path: '/auth/register', auth: false, ok: { user_id: uniqueId('pipe'), name: 'P', region: 'NA', password: 'correct horse' } },
  ];

  it('when a POST route gets a body that is not JSON, broken JSON, a bare value or too much, then every route answers alike', async () => {
    const cases: [string, Record<string, string>, string, number, string][] = [
      ['text/plain', { 'content-type': 'text/plain' }, '{}', 415, 'unsupported_media_type'],
      ['a form', { 'content-type': 'application/x-www-form-urlencoded' }, 'a=1', 415, 'unsupported_media_type'],
      ['broken JSON', { 'content-type': 'application/json' }, '{"a":', 400, 'invalid_json'],
      ['a bare string', { 'content-type': 'application/json' }, '"x"', 400, 'invalid_json'],
      ['too large', { 'content-type': 'application/json' }, JSON.stringify({ pad: 'x'.repeat(svc.config.bodyLimitBytes) }), 413, 'payload_too_large'],
    ];
    for (const p of posts()) {
      for (const [what, headers, body, status, code] of cases) {
        const r = await raw(svc.url, 'POST', p.path, { ...headers, ...(p.auth && { authorization: `Bearer ${token}` }) }, body);
        expect(r.status, `${p.path}: ${what}`).to.equal(status);
        expect(JSON.parse(r.body), `${p.path}: ${what}`).to.include({ error: code });
      }
    }
  });

  it('when a POST route gets application/*+json with a charset, then every route reads it as JSON', async () => {
    for (const p of posts()) {
      const r = await raw(
        svc.url,
        'POST',
        p.path,
        { 'content-type': 'application/vnd.leaderboard+json; charset=utf-8', ...(p.auth && { authorization: `Bearer ${token}` }) },
        JSON.stringify(p.ok),
      );
      expect(r.status, `${p.path}: ${r.body}`).to.be.oneOf([200, 201]);
    }
  });

  it('when a request carries an X-Request-Id, then every route echoes it, and replaces a malformed one', async () => {
    for (const [method, path] of [['GET', '/top'], ['GET', '/health'], ['GET', `/history/${user}`], ['POST', '/auth/login'], ['POST', '/score/add']] as const) {
      const kept = await raw(svc.url, method, path, { 'x-request-id': 'trace-42', 'content-type': 'application/json' }, method === 'POST' ? '{}' : undefined);
      expect(kept.headers['x-request-id'], path).to.equal('trace-42');
      const replaced = await raw(svc.url, method, path, { 'x-request-id': 'bad id with spaces' });
      expect(replaced.headers['x-request-id'], path).to.match(/^[0-9a-f-]{36}$/);
    }
  });
});
