/**
 * Gateway behaviour observed from a stand-in upstream that records what
 * arrives: header hygiene, request ids, read limits, bodies, timeouts and
 * refused connections.
 */
import http from 'node:http';
import net from 'node:net';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace';
import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { initTracing } from '@lb/common/platform';
import { Client } from '../../leaderboard-service/test/support/service.js';
import { eventually, startGateway, TEST_SECRET, type TestGateway } from './support/gateway.js';
import { deadPort, startEcho, startFailingApp, startHanging, type TestUpstream } from './support/upstreams.js';

const token = (sub = 'u1') =>
  jwt.sign({ name: 'N', region: 'EU' }, TEST_SECRET, { algorithm: 'HS256', subject: sub, issuer: 'leaderboard-platform', expiresIn: 60 });

/** A raw request (no fetch normalisation), for chunked bodies and odd headers. */
function raw(url: string, method: string, path: string, headers: Record<string, string>, chunks: string[] = []) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: any }>((resolve, reject) => {
    const req = http.request(url + path, { method, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

describe('api-gateway edge behaviour (stand-in upstreams)', () => {
  describe('with one echo upstream', () => {
    let echo: TestUpstream;
    let gw: TestGateway;
    let api: Client;

    before(async () => {
      echo = await startEcho();
      gw = await startGateway([echo.url], { ACCESS_LOG: 'true' });
      api = new Client(gw.url);
    });
    after(async () => {
      await gw?.stop();
      await echo?.stop();
    });
    beforeEach(() => {
      echo.requests.length = 0;
    });

    it('when a client sends identity headers, then none of them reaches the replica but the token and other headers do', async () => {
      const forged = {
        'x-user-id': 'victim', 'X-User': 'victim', 'x-user-name': 'Victim', 'x-user-region': 'EU', 'x-forwarded-user': 'victim',
        'x-authenticated-user': 'victim', 'x-auth-request-user': 'victim', 'X-Auth-Email': 'v@x', 'x-lb-internal': 'true',
        'X-LB-Shard': 'eu', 'x-custom': 'kept',
      };
      const sent = token();
      const r = await api.post('/score/add', { delta: 1 }, { token: sent, headers: { ...forged, 'x-forwarded-for': '198.51.100.7' } });
      expect(r.status).to.equal(200);
      const seen = echo.requests[0]!.headers;
      for (const name of Object.keys(forged).filter((n) => n !== 'x-custom')) expect(seen, name).not.to.have.property(name.toLowerCase());
      expect(seen['x-custom']).to.equal('kept');
      expect(seen.authorization).to.equal(`Bearer ${sent}`);
      // The test client connects over loopback, i.e. as a trusted proxy would.
      expect(seen['x-forwarded-for']).to.equal('198.51.100.7, 127.0.0.1');
      expect(seen['x-real-ip']).to.equal('198.51.100.7');
      expect(JSON.parse(echo.requests[0]!.body)).to.deep.equal({ delta: 1 });
    });

    it('when a request id is sent, then it is forwarded and echoed; a malformed or missing one is replaced by a generated id', async () => {
      const given = await api.get('/top', { headers: { 'x-request-id': 'trace-42.a:b' } });
      expect(given.headers.get('x-request-id')).to.equal('trace-42.a:b');
      expect(echo.requests[0]!.headers['x-request-id']).to.equal('trace-42.a:b');
      const bad = await api.get('/top', { headers: { 'x-request-id': 'no spaces allowed' } });
      const none = await api.get('/top');
      for (const [i, r] of [bad, none].entries()) {
        const id = r.headers.get('x-request-id')!;
        expect(id).to.match(/^[0-9a-f-]{36}$/);
        expect(echo.requests[i + 1]!.headers['x-request-id']).to.equal(id);
      }
      expect(bad.headers.get('x-request-id')).not.to.equal(none.headers.get('x-request-id'));
    });

    it('when answers come from the replica or the gateway, then X-Upstream names who answered', async () => {
      expect((await api.get('/top')).headers.get('x-upstream')).to.equal(echo.url);
      const health = await api.get('/health');
      expect(health.headers.get('x-upstream')).to.equal('gateway');
      expect(health.headers.get('x-request-id')).to.match(/^[0-9a-f-]{36}$/);
      const missing = await api.get('/nope');
      expect(missing.status).to.equal(404);
      expect(missing.body.error).to.equal('not_found');
      expect(missing.headers.get('x-upstream')).to.equal('gateway');
      expect(echo.requests.map((r) => r.url)).to.deep.equal(['/top'], 'neither /health nor unknown paths are proxied');
    });

    it('when a body arrives chunked, then the replica gets it whole with a Content-Length', async () => {
      const r = await raw(gw.url, 'POST', '/auth/login', { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, [
        '{"user_id":',
        '"u1","password":"pw"}',
      ]);
      expect(r.status).to.equal(200);
      const seen = echo.requests[0]!;
      expect(seen.headers['content-length']).to.equal(String(seen.body.length));
      expect(seen.headers).not.to.have.property('transfer-encoding');
      expect(JSON.parse(seen.body)).to.deep.equal({ user_id: 'u1', password: 'pw' });
    });

    it('when a body is larger than BODY_LIMIT_BYTES, then 413 payload_too_large and nothing is forwarded', async () => {
      const big = JSON.stringify({ pad: 'x'.repeat(gw.config.bodyLimitBytes) });
      const declared = await api.request('POST', '/auth/register', { raw: big });
      expect(declared.status).to.equal(413);
      expect(declared.body.error).to.equal('payload_too_large');
      const chunked = await raw(gw.url, 'POST', '/auth/register', { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, [
        big.slice(0, 10_000),
        big.slice(10_000),
      ]);
      expect(chunked.status).to.equal(413);
      expect(echo.requests).to.have.length(0);
    });

    it('when a client asks to close its connection, then the upstream connection still stays kept-alive', async () => {
      const r = await raw(gw.url, 'GET', '/top', { connection: 'close' });
      expect(r.status).to.equal(200);
      expect(r.headers.connection).to.equal('close');
      expect(echo.requests[0]!.headers.connection).to.equal('keep-alive');
    });

    it('when a client reads more than the limit, then 429 rate_limited with Retry-After, per client IP, and writes are not limited', async () => {
      const limitedGw = await startGateway([echo.url], { READ_RATE_LIMIT_COUNT: '5', READ_RATE_LIMIT_WINDOW_MS: '60000' });
      try {
        const api = new Client(limitedGw.url);
        const ip = { 'x-forwarded-for': '203.0.113.50' };
        for (let i = 0; i < 5; i++) expect((await api.get('/rank/u1', { headers: ip })).status).to.equal(200);
        const limited = await api.get('/rank/u1', { headers: ip });
        expect(limited.status).to.equal(429);
        expect(limited.body.error).to.equal('rate_limited');
        expect(limited.body.message).to.be.a('string');
        expect(limited.body.retry_after).to.be.within(1, 60);
        expect(limited.headers.get('retry-after')).to.equal(String(limited.body.retry_after));
        expect(echo.requests).to.have.length(5);
        expect((await api.get('/rank/u1', { headers: { 'x-forwarded-for': '203.0.113.51' } })).status).to.equal(200);
        for (let i = 0; i < 8; i++) expect((await api.post('/score/add', { delta: 1 }, { token: token(), headers: ip })).status).to.equal(200);
      } finally {
        await limitedGw.stop();
      }
    });

    it('when access logging is on, then one line per request names status, response time and upstream', async () => {
      const before = gw.accessLog.length;
      await api.get('/top?limit=3', { headers: { 'x-request-id': 'log-line-1' } });
      await eventually(() => gw.accessLog.length > before);
      const line = gw.accessLog.find((l) => l.includes('rid=log-line-1'))!;
      expect(line).to.match(/"GET \/top\?limit=3" 200 \d+ [\d.]+ ms upstream=http:\/\/127\.0\.0\.1:\d+ rid=log-line-1 trace=-$/);
    });
  });

  describe('with tracing on at ratio 0 (one echo upstream)', () => {
    const exporter = new InMemorySpanExporter();
    let echo: TestUpstream;
    let gw: TestGateway;
    let stopTracing: (() => Promise<void>) | undefined;
    before(async () => {
      echo = await startEcho();
      gw = await startGateway([echo.url], { OTEL_TRACES_SAMPLER_ARG: '0' });
      // In this process, as the gateway's index.ts does, with spans kept in memory instead of OTLP.
      stopTracing = initTracing(gw.config, { exporter });
    });
    after(async () => {
      await stopTracing?.();
      await gw?.stop();
      await echo?.stop();
    });
    beforeEach(() => exporter.reset());

    it('when a request is not sampled, then the replica is handed that decision in its traceparent, under the trace id nginx gave', async () => {
      const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      const r = await raw(gw.url, 'GET', '/top?limit=3', { 'x-lb-trace-id': traceId });
      expect(r.status).to.equal(200);
      expect(r.body.headers.traceparent).to.match(new RegExp(`^00-${traceId}-[0-9a-f]{16}-00$`));
      expect(r.body.headers).to.not.have.property('x-lb-trace-id');
      expect(exporter.getFinishedSpans()).to.have.length(0);
    });

    it("when the client's traceparent is sampled, then the replica gets the gateway's own attempt span under it, still sampled", async () => {
      const r = await raw(gw.url, 'GET', '/top?limit=3', { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
      expect(r.status).to.equal(200);
      expect(r.body.headers.traceparent).to.match(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/).and.not.include('b7ad6b7169203331');
      const spans = exporter.getFinishedSpans();
      expect(spans.map((x) => x.name)).to.have.members(['GET /top', 'GET /top']);
      const attempt = spans.find((x) => x.kind === SpanKind.CLIENT)!;
      expect(r.body.headers.traceparent).to.include(attempt.spanContext().spanId);
    });
  });

  describe('with failing upstreams', () => {
    const stops: (() => Promise<void>)[] = [];
    afterEach(async () => {
      while (stops.length) await stops.pop()!();
    });
    const gateway = async (urls: string[], env: Record<string, string> = {}) => {
      const gw = await startGateway(urls, env);
      stops.push(() => gw.stop());
      return { gw, api: new Client(gw.url) };
    };
    const upstream = async (u: Promise<TestUpstream>) => {
      const t = await u;
      stops.push(() => t.stop());
      return t;
    };

    it('when the first replica refuses connections, then a POST is retried on the next one and the first leaves rotation', async () => {
      const dead = `http://127.0.0.1:${await deadPort()}`;
      const echo = await upstream(startEcho());
      const { gw, api } = await gateway([dead, echo.url], { UPSTREAM_COOLOFF_MS: '60000' });
      const r = await api.post('/score/add', { delta: 5 }, { token: token() });
      expect(r.status).to.equal(200);
      expect(r.headers.get('x-upstream')).to.equal(echo.url);
      expect(JSON.parse(echo.requests[0]!.body)).to.deep.equal({ delta: 5 });
      const health = await api.get('/health');
      expect(health.status).to.equal(200);
      expect(health.body.upstreams).to.deep.equal([
        { url: dead, healthy: false, last_error: 'connect failed: ECONNREFUSED' },
        { url: echo.url, healthy: true, last_error: null },
      ]);
      for (let i = 0; i < 4; i++) expect((await api.get('/top')).headers.get('x-upstream')).to.equal(echo.url);
      expect(gw.deps.pool.all[0]!.healthy).to.equal(false);
    });

    it('when every replica refuses connections, then 502 bad_gateway JSON and /health is 503', async () => {
      const urls = [`http://127.0.0.1:${await deadPort()}`, `http://127.0.0.1:${await deadPort()}`];
      const { api } = await gateway(urls, { UPSTREAM_COOLOFF_MS: '60000' });
      const first = await api.get('/top');
      expect(first.status).to.equal(502);
      expect(first.body).to.deep.include({ error: 'bad_gateway' });
      expect(first.body.message).to.be.a('string');
      const write = await api.post('/score/add', { delta: 1 }, { token: token() });
      expect(write.status).to.equal(502);
      expect(write.body.error).to.equal('bad_gateway');
      const health = await api.get('/health');
      expect(health.status).to.equal(503);
      expect(health.body.ok).to.equal(false);
      expect(health.body.upstreams.map((u: { healthy: boolean }) => u.healthy)).to.deep.equal([false, false]);
    });

    it('when a replica does not answer in time, then a GET is retried on the next one and the slow one leaves rotation', async () => {
      const slow = await upstream(startHanging(503));
      const echo = await upstream(startEcho());
      const { api } = await gateway([slow.url, echo.url], { UPSTREAM_TIMEOUT_MS: '200' });
      const t0 = Date.now();
      const r = await api.get('/top');
      expect(r.status).to.equal(200);
      expect(r.headers.get('x-upstream')).to.equal(echo.url);
      expect(Date.now() - t0).to.be.within(190, 2000);
      expect(slow.requests).to.have.length(1);
      const health = await api.get('/health');
      expect(health.body.upstreams[0]).to.deep.include({ url: slow.url, healthy: false });
      expect(health.body.upstreams[0].last_error).to.match(/no answer within 200 ms|health check answered 503/);
    });

    it('when a write times out, then 504 gateway_timeout and it is not retried on another replica', async () => {
      const slow = await upstream(startHanging());
      const echo = await upstream(startEcho());
      const { api } = await gateway([slow.url, echo.url], { UPSTREAM_TIMEOUT_MS: '200', UPSTREAM_COOLOFF_MS: '60000' });
      const r = await api.post('/score/add', { delta: 1 }, { token: token() });
      expect(r.status).to.equal(504);
      expect(r.body.error).to.equal('gateway_timeout');
      expect(slow.requests).to.have.length(1);
      expect(echo.requests).to.have.length(0);
    });

    it('when a GET times out on the only replica, then 504 gateway_timeout', async () => {
      const slow = await upstream(startHanging());
      const { api } = await gateway([slow.url], { UPSTREAM_TIMEOUT_MS: '150', UPSTREAM_COOLOFF_MS: '60000' });
      const r = await api.get('/rank/u1');
      expect(r.status).to.equal(504);
      expect(r.body.error).to.equal('gateway_timeout');
      const next = await api.get('/rank/u1');
      expect(next.status, 'out of rotation now').to.equal(502);
    });

    it('when a body stalls or trickles, or the headers stall, then 408 request_timeout JSON closes the connection and nothing is forwarded', async () => {
      const echo = await upstream(startEcho());
      const { gw } = await gateway([echo.url], { BODY_TIMEOUT_MS: '300', HEADERS_TIMEOUT_MS: '300' });
      const port = Number(new URL(gw.url).port);
      const head = 'POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n';
      for (const [what, first, trickle] of [
        ['stalled body', head, false],
        ['trickled body', head, true],
        ['stalled headers', 'GET /top HTTP/1.1\r\nHost: x\r\n', false],
      ] as const) {
        const answer = await new Promise<string>((resolve) => {
          const s = net.connect(port, '127.0.0.1', () => s.write(first));
          let text = '';
          const drip = trickle ? setInterval(() => s.writable && s.write('x'), 50) : undefined;
          s.on('data', (d) => (text += d.toString()));
          s.on('close', () => {
            clearInterval(drip);
            resolve(text);
          });
          s.on('error', () => undefined);
        });
        expect(answer, what).to.match(/^HTTP\/1\.1 408 /);
        expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)), what).to.deep.include({ error: 'request_timeout' });
        expect(answer.toLowerCase(), what).to.include('connection: close');
      }
      expect(echo.requests).to.have.length(0);
    });

    it('when a replica answers 503 (a shard it needs is down), then the answer is passed on, never retried, and the replica stays in rotation', async () => {
      const failing = await upstream(startFailingApp(503));
      const echo = await upstream(startEcho());
      const { gw, api } = await gateway([failing.url, echo.url], { UPSTREAM_COOLOFF_MS: '60000' });
      const answers = [];
      for (let i = 0; i < 10; i++) answers.push(i % 2 ? await api.get('/top?region=NA') : await api.post('/score/add', { delta: 1 }, { token: token() }));
      const fromFailing = answers.filter((r) => r.headers.get('x-upstream') === failing.url);
      expect(fromFailing).to.have.length(5);
      for (const r of fromFailing) {
        expect(r.status).to.equal(503);
        expect(r.body).to.deep.include({ error: 'unavailable', shard: 'na' });
        expect(r.headers.get('retry-after')).to.equal('1');
      }
      expect(echo.requests).to.have.length(5, 'no 503 was retried on the other replica');
      expect(gw.deps.pool.all.map((u) => u.healthy)).to.deep.equal([true, true]);
    });

    it('when a replica out of rotation is alive but not ready (/health 503, /health/live 200), then the probe re-admits it', async () => {
      const port = await deadPort();
      const echo = await upstream(startEcho());
      const { gw, api } = await gateway([`http://127.0.0.1:${port}`, echo.url], { UPSTREAM_COOLOFF_MS: '100', PROBE_INTERVAL_MS: '30' });
      await api.get('/top');
      await api.get('/top');
      expect(gw.deps.pool.all[0]!.healthy).to.equal(false);
      await upstream(startFailingApp(503, port));
      await eventually(() => gw.deps.pool.all[0]!.healthy);
    });

    it('when a replica out of rotation answers its health probe after the cool-off, then it is re-admitted', async () => {
      const port = await deadPort();
      const echoA = await upstream(startEcho());
      const { gw, api } = await gateway([`http://127.0.0.1:${port}`, echoA.url], { UPSTREAM_COOLOFF_MS: '300', PROBE_INTERVAL_MS: '30' });
      await api.get('/top');
      await api.get('/top');
      expect(gw.deps.pool.all[0]!.healthy).to.equal(false);
      const back = await upstream(startEcho(port));
      const t0 = Date.now();
      await eventually(() => gw.deps.pool.all[0]!.healthy);
      expect(Date.now() - t0).to.be.below(1500);
      const seen = new Set<string>();
      for (let i = 0; i < 4; i++) seen.add((await api.get('/top')).headers.get('x-upstream')!);
      expect([...seen].sort()).to.deep.equal([back.url, echoA.url].sort());
    });
  });
});
