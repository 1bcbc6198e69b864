/**
 * Live streams (SSE) through the whole stack: nginx → gateways → replicas,
 * started by startStack on ephemeral ports. Unbuffered and long-lived
 * through every hop, the per-IP cap, and a replica killed under a stream:
 * the client reconnects (honouring `retry:`, sending Last-Event-ID) and
 * resumes on another replica without a duplicate event.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import type { Stack } from '../scripts/stack/stack.js';
import { post } from './support/e2e.js';
import { dataOf, ReconnectingSse, SseStream } from './support/sse.js';
import { skipUnlessInstalled, startTestStack, type TestStack } from './support/test-stack.js';
/** Per gateway process; two gateways. */
const CAP = 3;
/** Shorter than the tests' streams: the attempt timeout must bound response headers only. */
const UPSTREAM_TIMEOUT_MS = 2000;

describe('live streams through nginx and the gateways (end to end)', function () {
  this.timeout(240_000);
  let running: TestStack | undefined;
  let stack: Stack;
  const streams: SseStream[] = [];
  const tokens = new Map<string, string>();
  const open = async (path: string, headers: Record<string, string> = {}) => {
    const s = await SseStream.open(stack.url + path, { headers });
    streams.push(s);
    return s;
  };
  const setScore = async (user: string, score: number) => {
    const r = await post(`${stack.url}/score/update`, { score }, { token: tokens.get(user)! });
    expect(r.status, JSON.stringify(r.body)).to.equal(200);
  };
  const top = async () => ((await (await fetch(`${stack.url}/top?region=GLOBAL&limit=5`)).json()) as { rows: unknown[] }).rows;

  before(async function () {
    skipUnlessInstalled(this);
    running = await startTestStack('lb-live-', {
      replicas: 2,
      gateways: 2,
      workers: 1,
      metrics: false,
      env: { ACCESS_LOG: 'false', LOG_LEVEL: 'warn' },
      envFor: {
        service: { LIVE_HEARTBEAT_MS: '500' },
        gateway: { LIVE_MAX_STREAMS_PER_IP: String(CAP), UPSTREAM_TIMEOUT_MS: String(UPSTREAM_TIMEOUT_MS) },
      },
    });
    stack = running.stack;
    for (const [i, id] of ['live_a', 'live_b', 'live_c'].entries()) {
      const r = await post(`${stack.url}/auth/register`, { user_id: id, name: id, region: 'EU', password: 'a long enough password', initialScore: 100 - i });
      expect(r.status, JSON.stringify(r.body)).to.equal(201);
      tokens.set(id, r.body.token);
    }
  });
  afterEach(() => {
    for (const s of streams.splice(0)) s.close();
  });
  after(async () => {
    await running?.stop();
  });

  it('when a client streams through nginx, then events and heartbeats arrive unbuffered, beyond the gateway\'s attempt timeout', async () => {
    const s = await open('/live?region=GLOBAL&limit=5');
    expect(s.status).to.equal(200);
    expect(s.headers.get('content-type')).to.match(/^text\/event-stream/);
    expect(s.headers.get('x-upstream-addr')).to.match(/^127\.0\.0\.1:\d+$/);
    const first = await s.event(0, 2000);
    expect(dataOf(first).rows).to.deep.equal(await top());
    await setScore('live_c', 500);
    const next = await s.event(1, 2000);
    expect(dataOf(next).rows[0].user_id).to.equal('live_c');
    // Still open, heartbeats still arriving, after the gateway's per-attempt timeout.
    await sleep(UPSTREAM_TIMEOUT_MS + 500);
    const seen = s.comments.length;
    await s.until(() => s.comments.length > seen, 2000, 'a heartbeat after the attempt timeout');
    expect(s.ended).to.equal(false);
  });

  it('when one client address opens more streams than the cap, then nginx passes on 429 too_many_streams, and closing one frees a place', async () => {
    const opened: SseStream[] = [];
    const refused: (SseStream & { body?: any })[] = [];
    // Two gateways with CAP each: 2 × CAP + 1 streams cannot all be admitted.
    for (let i = 0; i < 2 * CAP + 1; i++) {
      const s = await open('/live?region=EU&limit=3');
      (s.status === 200 ? opened : refused).push(s);
    }
    expect(refused.length, `${opened.length} admitted`).to.be.at.least(1);
    expect(opened.length).to.be.at.most(2 * CAP);
    expect(refused[0]!.status).to.equal(429);
    expect(refused[0]!.body).to.include({ error: 'too_many_streams', retry_after: 5 });
    expect(refused[0]!.headers.get('retry-after')).to.equal('5');
    for (const s of opened) s.close();
    // The gateways release a stream when it closes: all places are free again.
    const deadline = Date.now() + 5000;
    let admitted = 0;
    while (Date.now() < deadline) {
      const again: SseStream[] = [];
      for (let i = 0; i < 2 * CAP; i++) again.push(await open('/live?region=EU&limit=3'));
      admitted = again.filter((s) => s.status === 200).length;
      for (const s of again) s.close();
      if (admitted === 2 * CAP) break;
      await sleep(200);
    }
    expect(admitted).to.equal(2 * CAP);
  });

  it('when the replica serving a stream is killed, then the client reconnects through nginx and resumes on another replica', async () => {
    const client = new ReconnectingSse(`${stack.url}/live?region=GLOBAL&limit=5`);
    try {
      await client.until(() => client.events.length >= 1, 5000, 'the first event');
      const firstConn = client.connections[0]!;
      const upstream = firstConn.headers.get('x-upstream')!;
      const index = stack.serviceUrls.indexOf(upstream);
      expect(index, `X-Upstream ${upstream}`).to.be.at.least(0);
      expect(firstConn.retry).to.equal(3000);
      await stack.kill(`leaderboard-service-${index + 1}`);
      // The stream breaks; after `retry` the client comes back with Last-Event-ID.
      await client.until(() => client.connections.length >= 2 && client.connections.at(-1)!.status === 200, 15_000, 'a reconnection');
      const second = client.connections.at(-1)!;
      expect(second.headers.get('x-upstream')).to.not.equal(upstream);
      // Its state is the one the client has: no duplicate first event.
      await sleep(800);
      expect(second.events).to.deep.equal([]);
      // And it follows the board from there.
      await setScore('live_b', 900);
      await client.until(() => second.events.length >= 1, 3000, 'an event after the reconnection');
      expect(dataOf(second.events.at(-1)!).rows).to.deep.equal(await top());
      const ids = client.events.map((e) => e.id);
      expect(new Set(ids).size).to.equal(ids.length);
    } finally {
      await client.close();
    }
  });

  it('when a gateway, then a replica, serving streams stop gracefully, then their streams end cleanly and they exit 0 at once', async () => {
    for (const kind of ['gateway', 'replica'] as const) {
      const s = await open('/live?region=GLOBAL&limit=5');
      await s.event(0, 2000);
      const name =
        kind === 'gateway'
          ? `api-gateway-${stack.gatewayUrls.findIndex((u) => u.endsWith(`:${s.headers.get('x-upstream-addr')!.split(':')[1]}`)) + 1}`
          : `leaderboard-service-${stack.serviceUrls.indexOf(s.headers.get('x-upstream')!) + 1}`;
      expect(name).not.to.match(/-0$/);
      const started = Date.now();
      const exit = await stack.kill(name, 'SIGTERM');
      expect(exit?.code, `${name} exit`).to.equal(0);
      // Well within the 10 s shutdown deadline: open streams did not hold the server.
      expect(Date.now() - started).to.be.below(5000);
      await s.until(() => s.ended, 3000, `the end of the stream (${name})`);
      expect(s.error, `${name}: ended by an error`).to.equal(undefined);
    }
  });
});
