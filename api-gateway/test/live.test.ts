/**
 * Live streams (SSE) through the gateway, against a stand-in replica that
 * streams forever: the attempt timeout bounds response headers only, open
 * streams do not take the API's upstream sockets, the per-IP cap (429
 * too_many_streams, released on close), and a graceful stop ends streams.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { SseStream } from '../../test/support/sse.js';
import { eventually, startGateway, type TestGateway } from './support/gateway.js';

const CAP = 3;

describe('api-gateway: live streams (stand-in replica)', () => {
  let upstream: http.Server;
  let upstreamUrl: string;
  let gw: TestGateway;
  const open: SseStream[] = [];
  const stream = async (headers: Record<string, string> = {}) => {
    const s = await SseStream.open(`${gw.url}/live?region=GLOBAL`, { headers, timeoutMs: 3000 });
    open.push(s);
    return s;
  };

  before(async () => {
    upstream = http.createServer((req, res) => {
      if (req.url?.startsWith('/live')) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.write('retry: 3000\n\n');
        let n = 0;
        const tick = setInterval(() => res.write(`id: ${n}\nevent: top\ndata: {"n":${n++}}\n\n`), 100);
        res.on('close', () => clearInterval(tick));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"region":"GLOBAL","total":0,"rows":[]}');
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', () => resolve()));
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    // One keep-alive socket for the API and a 400 ms attempt timeout: streams must use neither.
    gw = await startGateway([upstreamUrl], { UPSTREAM_MAX_SOCKETS: '1', LIVE_MAX_STREAMS_PER_IP: String(CAP) });
  });
  afterEach(() => {
    for (const s of open.splice(0)) s.close();
  });
  after(async () => {
    await gw?.stop();
    upstream?.closeAllConnections();
    await new Promise<void>((resolve) => upstream?.close(() => resolve()));
  });

  it('when streams stay open past the attempt timeout, then they keep flowing and the API is still answered', async () => {
    const streams = [await stream(), await stream(), await stream()];
    expect(streams.map((s) => s.status)).to.deep.equal([200, 200, 200]);
    await sleep(gw.config.upstreamTimeoutMs + 400);
    for (const s of streams) {
      const seen = s.events.length;
      await s.until(() => s.events.length > seen + 2, 2000, 'events after the attempt timeout');
      expect(s.ended).to.equal(false);
    }
    const started = Date.now();
    const top = await fetch(`${gw.url}/top?region=GLOBAL`);
    expect(top.status).to.equal(200);
    expect(Date.now() - started).to.be.below(gw.config.upstreamTimeoutMs);
    expect(gw.deps.forwarder.openStreams()).to.equal(3);
  });

  it('when a client address holds the cap, then one more stream is 429 too_many_streams until one closes', async () => {
    const held = [await stream(), await stream(), await stream()];
    const refused = (await stream()) as SseStream & { body?: any };
    expect(refused.status).to.equal(429);
    expect(refused.body).to.include({ error: 'too_many_streams', retry_after: 5 });
    expect(refused.headers.get('retry-after')).to.equal('5');
    // Another client address behind the trusted proxy has places of its own.
    const other = await stream({ 'x-forwarded-for': '198.51.100.9' });
    expect(other.status).to.equal(200);
    held[0]!.close();
    await eventually(async () => {
      const s = await stream();
      s.close();
      return s.status === 200;
    }, 3000);
  });

  it('when the gateway drains, then its streams end cleanly', async () => {
    const s = await stream();
    await s.event(0, 2000);
    gw.deps.forwarder.drain();
    await s.until(() => s.ended, 2000, 'the end of the stream');
    expect(s.error).to.equal(undefined);
  });
});
