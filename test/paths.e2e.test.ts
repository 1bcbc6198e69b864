/**
 * Path traversal through nginx: nginx picks a location by the decoded and
 * normalised path (`/history/%2e%2e` is `/`), so every API prefix is asked
 * every encoding of `.`, `..` and `/`, on a raw request whose path reaches
 * nginx exactly as written (fetch and `new URL` would resolve the dots
 * first). The answer is the API's JSON, never the live page, one of its
 * assets or a 5xx; and `/` and its assets are still served.
 */
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { expect } from 'chai';
import { API_PREFIXES } from '../api-gateway/src/routes/proxy.js';
import { WEB_DIST } from '../scripts/stack/paths.js';
import { HANG_MS, runPool } from './support/e2e.js';
import { skipUnlessInstalled, startTestStack, type TestStack } from './support/test-stack.js';

/** One raw answer. */
interface RawReply {
  method: string;
  path: string;
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** The encodings, each as paths under an API prefix `p` (`asset` is a real file of the page, `/assets/<name>`). */
const ENCODINGS: Record<string, (p: string, asset: string) => string[]> = {
  '%2e': (p) => [`${p}/%2e`, `${p}/.%2e`, `${p}/%2e.`, `${p}/%2e/x`],
  '%252e': (p) => [`${p}/%252e%252e`, `${p}/%252e%252e/`, `${p}/%252e%252e%252f`],
  '%c0%ae': (p) => [`${p}/%c0%ae%c0%ae`, `${p}/%c0%ae%c0%ae/`, `${p}/%c0%ae%c0%ae%c0%af`],
  '..%2f': (p, asset) => [`${p}/..%2f`, `${p}/x/..%2f..%2f`, `${p}/..%2F`, `${p}/..%2f${asset.slice(1)}`, `${p}/..%2fnginx-health`],
  '..%5c': (p) => [`${p}/..%5c`, `${p}/..%5c..%5c`, `${p}/..%5C`],
  '/./': (p) => [`${p}/./`, `${p}/./x`, `${p}/.`],
  '//': (p) => [`${p}//`, `${p}//x`, `/${p}`, `${p}//..`],
  '%2e%2e': (p, asset) => [
    `${p}/%2e%2e`,
    `${p}/%2E%2E/`,
    `${p}/x/%2e%2e`,
    `${p}/x/%2e%2e/%2e%2e`,
    `${p}/%2e%2e?region=%2e%2e`,
    `${p}/%2e%2e${asset}`,
    `${p}/%2e%2e/nginx-health`,
    `${p}/%2e%2e/metrics`,
  ],
  '..': (p, asset) => [`${p}/..`, `${p}/../`, `${p}/x/..`, `${p}/x/../..`, `${p}/..?region=..`, `${p}/..${asset}`, `${p}/../nginx-health`],
};

describe('path traversal, end to end through nginx', function () {
  this.timeout(120_000);
  let running: TestStack | undefined;
  let port: number;
  let asset: string;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16, localAddress: '127.0.9.1' });

  before(async function () {
    skipUnlessInstalled(this);
    running = await startTestStack('lb-paths-', {
      replicas: 1,
      gateways: 1,
      workers: 1,
      metrics: false,
      restart: false,
      // Several hundred reads from one address: answers, not the read limit's 429s.
      env: { ACCESS_LOG: 'false', LOG_LEVEL: 'warn', READ_RATE_LIMIT_COUNT: '100000' },
    });
    port = Number(new URL(running.stack.url).port);
    const js = readdirSync(join(WEB_DIST, 'assets')).find((f) => f.endsWith('.js'));
    expect(js, 'web/dist/assets has the bundle').to.be.a('string');
    asset = `/assets/${js!}`;
  });

  after(async () => {
    agent.destroy();
    await running?.stop();
  });

  /** Sends `method path` with the path exactly as written; a live stream is not read past its head. */
  function raw(method: string, path: string): Promise<RawReply> {
    return new Promise((resolve, reject) => {
      const body = method === 'POST' ? '{}' : undefined;
      const req = http.request(
        { host: '127.0.0.1', port, path, method, agent, timeout: HANG_MS, headers: body === undefined ? {} : { 'content-type': 'application/json' } },
        (res) => {
          const done = (text: string) => resolve({ method, path, status: res.statusCode!, headers: res.headers, text });
          if (String(res.headers['content-type']).startsWith('text/event-stream')) {
            res.destroy();
            done('');
            return;
          }
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => done(text));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer to ${method} ${path} within ${HANG_MS} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Why `r` is not an answer of the API to a path it has no route for, or undefined when it is. */
  function notAnApiAnswer(r: RawReply): string | undefined {
    const type = String(r.headers['content-type'] ?? '');
    if (r.text.trimStart().toLowerCase().startsWith('<!doctype html')) return 'the live page';
    if (r.status >= 500) return `a ${r.status}`;
    // A genuine answer of the API (a replica's, or the gateway's own /health).
    if (r.status >= 200 && r.status < 300 && (r.headers['x-served-by'] !== undefined || type.startsWith('text/event-stream'))) return undefined;
    if (r.status < 400) return `a ${r.status} that no replica gave`;
    if (!type.startsWith('application/json')) return `a ${r.status} of type ${type || 'none'}`;
    let body: unknown;
    try {
      body = JSON.parse(r.text);
    } catch {
      return `a ${r.status} that is not JSON`;
    }
    const { error, message } = (body ?? {}) as { error?: unknown; message?: unknown };
    if (typeof error !== 'string' || typeof message !== 'string') return `a ${r.status} without error and message`;
    return undefined;
  }

  it('when every API prefix is asked every encoding of . and .. and /, then each answer is the JSON of a 4xx or the API, never the page, an asset or a 5xx', async () => {
    // The prefixes of the gateway's route table, which must cover at least these.
    expect(API_PREFIXES).to.include.members(['/auth', '/score', '/top', '/rank', '/around', '/history', '/boards', '/live', '/me', '/admin', '/health']);
    const cases = API_PREFIXES.flatMap((p) =>
      Object.entries(ENCODINGS).flatMap(([encoding, paths]) => paths(p, asset).flatMap((path) => ['GET', 'POST'].map((method) => ({ encoding, method, path })))),
    );
    const replies = await runPool(
      cases.map((c) => () => raw(c.method, c.path)),
      16,
    );
    const wrong = replies.flatMap((r, i) => {
      const why = notAnApiAnswer(r);
      return why === undefined ? [] : [`${cases[i]!.encoding}: ${r.method} ${r.path} answered ${why}: ${r.text.slice(0, 80)}`];
    });
    expect(wrong.length, `${wrong.length} of ${replies.length} wrong:\n${wrong.join('\n')}`).to.equal(0);
    // Nothing that resolves to the page or a file of it is served as one.
    const served = replies.filter((r) => r.status === 200 && !String(r.headers['content-type']).startsWith('application/json'));
    expect(served.map((r) => `${r.method} ${r.path}`)).to.deep.equal([]);
  });

  it('when a path only normalises to the page, an asset or /nginx-health, then 400 invalid_path in the JSON shape', async () => {
    for (const path of ['/history/%2e%2e', '/rank/%2e%2e?region=%2e%2e', '/auth/..%2f', `/score/..%2f${asset.slice(1)}`, `/top/%2e%2e${asset}`, '/me/../nginx-health', '/./', '/%2e/', '/assets/../', `/assets/x/..${asset.slice('/assets'.length)}`, '//']) {
      for (const method of ['GET', 'HEAD', 'POST']) {
        const r = await raw(method, path);
        const what = `${method} ${path}`;
        expect(r.status, what).to.equal(400);
        expect(r.headers['content-type'], what).to.equal('application/json');
        expect(r.headers['x-request-id'], what).to.be.a('string');
        if (method !== 'HEAD') expect(JSON.parse(r.text), what).to.deep.include({ error: 'invalid_path' });
      }
    }
  });

  it('when / and an asset are asked as written, then the page and the file are served (other methods: 405 method_not_allowed)', async () => {
    for (const path of ['/', '/?region=EU']) {
      const r = await raw('GET', path);
      expect([r.status, r.headers['content-type']], path).to.deep.equal([200, 'text/html']);
      expect(r.text.trimStart().toLowerCase(), path).to.match(/^<!doctype html>/);
    }
    const a = await raw('GET', asset);
    expect([a.status, a.headers['content-type']], asset).to.deep.equal([200, 'application/javascript']);
    expect(a.text).to.equal(readFileSync(join(WEB_DIST, asset.slice(1)), 'utf8'));
    // Other methods on them: nginx's 405, in the JSON shape.
    for (const path of ['/', asset]) {
      const r = await raw('POST', path);
      expect([r.status, r.headers['content-type']], `POST ${path}`).to.deep.equal([405, 'application/json']);
      expect(JSON.parse(r.text), `POST ${path}`).to.deep.include({ error: 'method_not_allowed' });
    }
    const h = await raw('GET', '/nginx-health');
    expect([h.status, JSON.parse(h.text)]).to.deep.equal([200, { ok: true, component: 'nginx' }]);
    // An API path written plainly is the API's.
    const top = await raw('GET', '/top?region=GLOBAL');
    expect([top.status, typeof top.headers['x-served-by']], top.text).to.deep.equal([200, 'string']);
  });
});
