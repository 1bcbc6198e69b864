import { expect } from 'chai';
import { ConfigError } from '@lb/common/platform';
import { loadConfig } from '../src/config.js';
import { requestIdOf } from '@lb/common/platform';
import { isIdentityHeader, setForwardingHeaders, stripIdentityHeaders } from '../src/http/headers.js';
import { isPublicPath, isScoreWrite } from '../src/routes/proxy.js';

const SECRET = 'x'.repeat(40);

describe('api-gateway config and request helpers', () => {
  it('when only the secret is set, then the documented defaults apply', () => {
    const c = loadConfig({ JWT_SECRET: SECRET });
    expect(c.port).to.equal(4000);
    expect(c.host).to.equal('127.0.0.1');
    expect(c.upstreamUrls).to.deep.equal(['http://127.0.0.1:5001', 'http://127.0.0.1:5002', 'http://127.0.0.1:5003']);
    expect(c.readRateLimitCount).to.equal(6000);
    expect(c.readRateLimitWindowMs).to.equal(1000);
    expect(c.token.issuer).to.equal('leaderboard-platform');
    expect(Object.isFrozen(c)).to.equal(true);
  });

  for (const [key, value] of [
    ['JWT_SECRET', ''],
    ['LEADERBOARD_SERVICE_URLS', 'ftp://x'],
    ['LEADERBOARD_SERVICE_URLS', 'http://a:1,http://a:1'],
    ['UPSTREAM_TIMEOUT_MS', '0'],
    ['READ_RATE_LIMIT_COUNT', 'many'],
    ['ACCESS_LOG', 'maybe'],
    ['PORT', '70000'],
  ] as const) {
    it(`when ${key}=${JSON.stringify(value)}, then loading fails naming ${key}`, () => {
      const env: Record<string, string> = { JWT_SECRET: SECRET, [key]: value };
      expect(() => loadConfig(env)).to.throw(ConfigError).with.property('key', key);
    });
  }

  it('when PORT is 0, then it is accepted', () => {
    expect(loadConfig({ JWT_SECRET: SECRET, PORT: '0' }).port).to.equal(0);
  });

  it('when a path is public API, then it is proxied, and anything else is not', () => {
    for (const p of ['/auth/login', '/auth/register', '/score', '/score/add', '/score/rank/u1', '/top', '/rank/u1', '/around/u1', '/history/u1', '/boards', '/boards/weekly', '/boards/weekly/top', '/admin/boards', '/admin/boards/x']) {
      expect(isPublicPath(p), p).to.equal(true);
    }
    for (const p of ['/health', '/', '/auth', '/auth/', '/top/x', '/rank/', '/rank/a/b', '/metrics', '/auth/../health', '/score/./add', '/scores', '/admin', '/admin/', '/boards/../health', '/boardsx']) {
      expect(isPublicPath(p), p).to.equal(false);
    }
  });

  it('when a request is a non-read under /score, then it is a score write', () => {
    expect(isScoreWrite('POST', '/score/add')).to.equal(true);
    expect(isScoreWrite('POST', '/score')).to.equal(true);
    expect(isScoreWrite('PUT', '/score/update')).to.equal(true);
    expect(isScoreWrite('GET', '/score/rank/u1')).to.equal(false);
    expect(isScoreWrite('POST', '/auth/login')).to.equal(false);
  });

  it('when identity headers arrive, then exactly those are stripped', () => {
    const h: Record<string, string> = {
      'x-user-id': 'a', 'x-user': 'a', 'x-user-name': 'a', 'x-user-region': 'EU', 'x-forwarded-user': 'a',
      'x-authenticated-user': 'a', 'x-auth-request-user': 'a', 'x-lb-internal': '1', 'x-lb-shard': 'eu',
      'x-request-id': 'r', 'x-users-favourite': 'kept', authorization: 'Bearer t', 'content-type': 'application/json',
    };
    stripIdentityHeaders(h);
    expect(Object.keys(h).sort()).to.deep.equal(['authorization', 'content-type', 'x-request-id', 'x-users-favourite']);
    expect(isIdentityHeader('x-auth')).to.equal(false);
  });

  it('when the peer is not a trusted proxy, then its X-Forwarded-* are replaced, not appended to', () => {
    const h: Record<string, string> = { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil' };
    setForwardingHeaders(h, '203.0.113.9', '203.0.113.9', false);
    expect(h).to.deep.equal({ 'x-forwarded-for': '203.0.113.9', 'x-real-ip': '203.0.113.9' });
  });

  it('when the peer is a trusted proxy, then the client is appended to its chain', () => {
    const h: Record<string, string> = { 'x-forwarded-for': '198.51.100.7', 'x-forwarded-proto': 'https' };
    setForwardingHeaders(h, '127.0.0.1', '198.51.100.7', true);
    expect(h).to.deep.equal({ 'x-forwarded-for': '198.51.100.7, 127.0.0.1', 'x-real-ip': '198.51.100.7', 'x-forwarded-proto': 'https' });
  });

  it('when a request id is well-formed it is kept, otherwise a UUID is made', () => {
    expect(requestIdOf('abc-123:x.y_z')).to.equal('abc-123:x.y_z');
    for (const bad of [undefined, '', 'has space', 'a'.repeat(129), ['a', 'b']]) {
      expect(requestIdOf(bad)).to.match(/^[0-9a-f-]{36}$/);
    }
  });
});
