/**
 * The public route table (common/src/contracts/routes.ts) and what the edge
 * derives from it: the gateway's forwarded paths, score writes and live
 * streams, and nginx's live location.
 */
import { expect } from 'chai';
import {
  API_PREFIXES,
  FORWARDED_ROUTES,
  LIVE_ROUTES,
  liveLocationRegex,
  methodServed,
  pathRegExp,
  prefixOf,
  PUBLIC_ROUTES,
  SCORE_WRITE_ROUTES,
} from '../src/contracts/routes.js';

/** The regexp syntax the table may use, so that a path means the same to JavaScript and to nginx's PCRE. */
const PORTABLE_PATH = /^(?:\/(?:[a-z0-9_-]+|\[\^\/\]\+|\.\+)|\(\?:\/(?:\.\*|[a-z0-9_-]+)\)\?)+$/;

describe('public route table', () => {
  it('when every row is read, then its path is portable regexp syntax under a literal first segment, and it compiles', () => {
    for (const r of PUBLIC_ROUTES) {
      expect(r.path, r.path).to.match(PORTABLE_PATH);
      expect(prefixOf(r), r.path).to.match(/^\/[a-z]+$/);
      expect(() => new RegExp(`^${r.path}$`), r.path).not.to.throw();
      expect(r.doc, r.path).to.not.equal('');
    }
  });

  it('when the prefixes are listed, then they are the first segments the API answers, the gateway\'s /health included', () => {
    expect(API_PREFIXES).to.deep.equal(['/auth', '/score', '/top', '/live', '/rank', '/around', '/history', '/boards', '/me', '/admin', '/health']);
  });

  it('when a path is matched against the forwarded rows, then public paths are forwarded and nothing else is', () => {
    const forwarded = pathRegExp(FORWARDED_ROUTES);
    for (const p of ['/auth/login', '/score', '/score/add', '/top', '/live', '/me/live', '/me/live-ticket', '/rank/u1', '/around/u1', '/history/u1', '/boards', '/boards/w/top', '/boards/w/live', '/admin/boards/x']) {
      expect(forwarded.test(p), p).to.equal(true);
    }
    for (const p of ['/health', '/', '/auth', '/top/x', '/rank/', '/rank/a/b', '/me', '/me/x', '/metrics', '/admin', '/scores', '/boardsx', '/live/x']) {
      expect(forwarded.test(p), p).to.equal(false);
    }
  });

  it('when the special rows are listed, then streams are GETs, score writes are writes, and the gateway\'s own rows are not forwarded', () => {
    for (const r of LIVE_ROUTES) expect(r.methods, r.path).to.deep.equal(['GET']);
    for (const r of SCORE_WRITE_ROUTES) {
      expect(methodServed(r.methods, 'POST') && !methodServed(r.methods, 'GET') && !methodServed(r.methods, 'HEAD'), r.path).to.equal(true);
      expect(r.auth, r.path).to.match(/^token/);
    }
    expect(PUBLIC_ROUTES.filter((r) => r.upstream === 'api-gateway').map((r) => r.path)).to.deep.equal(['/health']);
    const scoreWrite = pathRegExp(SCORE_WRITE_ROUTES);
    expect(['/score', '/score/add', '/boards/w/scores'].every((p) => scoreWrite.test(p))).to.equal(true);
    expect(['/scores', '/boards/w/top', '/boards/scores'].some((p) => scoreWrite.test(p))).to.equal(false);
  });

  it('when methods are asked, then reads are GET and HEAD, writes everything else', () => {
    expect(['GET', 'HEAD'].map((m) => methodServed('reads', m))).to.deep.equal([true, true]);
    expect(['POST', 'PUT', 'OPTIONS'].map((m) => methodServed('reads', m))).to.deep.equal([false, false, false]);
    expect(['POST', 'PUT', 'DELETE', 'OPTIONS'].map((m) => methodServed('writes', m))).to.deep.equal([true, true, true, true]);
    expect(methodServed(['POST'], 'GET')).to.equal(false);
    expect(methodServed('any', 'PATCH')).to.equal(true);
  });

  it('when nginx\'s live location is rendered, then it anchors each stream path on its own', () => {
    expect(liveLocationRegex()).to.equal('(^/live$|^/boards/[^/]+/live$|^/me/live$)');
  });
});
