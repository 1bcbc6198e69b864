/**
 * Live streams (SSE) through the whole stack: nginx holds the streams
 * (nchan) after a gateway and a replica checked them once, and the replicas
 * publish each change to the channel. Started by startStack on ephemeral
 * ports with 3 replicas: the first event, coalescing, heartbeats, retry,
 * Last-Event-ID resume and junk ids (nchan 1.3.6 crashes on some), the
 * per-address cap nginx enforces, one publication per change whatever the
 * number of replicas, the player's card with a ticket, and replicas and
 * gateways that stop or die under open streams.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import type { Stack } from '../scripts/stack/stack.js';
import { post } from './support/e2e.js';
import { dataOf, SseStream, type SseEvent } from './support/sse.js';
import { skipUnlessInstalled, startTestStack, type TestStack } from './support/test-stack.js';

/** Streams per client address (nginx's LIVE_MAX_STREAMS_PER_IP here). */
const CAP = 4;
/** How long "nothing is pushed" is watched for: several coalescing intervals. */
const QUIET_MS = 1200;
/** nchan's message ids: `<unix seconds>:<tag>`. */
const NCHAN_ID = /^\d+:\d+$/;

describe('live streams held by nginx (nchan), end to end', function () {
  this.timeout(240_000);
  let running: TestStack | undefined;
  let stack: Stack;
  const streams: SseStream[] = [];
  const tokens = new Map<string, string>();
  /** Source addresses: each test opens its streams from one of its own, so the cap never counts another test's. */
  let nextAddress = 10;
  let address = '127.0.0.10';
  const open = async (path: string, headers: Record<string, string> = {}, opts: { accept?: string | null; localAddress?: string } = {}) => {
    const s = await SseStream.open(stack.url + path, { headers, localAddress: opts.localAddress ?? address, ...(opts.accept !== undefined && { accept: opts.accept }) });
    streams.push(s);
    return s;
  };
  const setScore = async (user: string, score: number) => {
    const r = await post(`${stack.url}/score/update`, { score }, { token: tokens.get(user)! });
    expect(r.status, JSON.stringify(r.body)).to.equal(200);
  };
  const top = async (query: string) => ((await (await fetch(`${stack.url}/top?${query}`)).json()) as { rows: unknown[] }).rows;
  const nchan = async (): Promise<Record<string, number>> => {
    const text = await (await fetch(`${stack.liveUrl}/nchan_status`)).text();
    return Object.fromEntries([...text.matchAll(/^([a-z ]+): (\d+)$/gm)].map((m) => [m[1]!.replace(/ /g, '_'), Number(m[2])]));
  };
  const nginxLog = () => readFileSync(join(stack.dataDir, 'logs', 'nginx.log'), 'utf8');
  const ids = (s: SseStream) => s.events.map((e) => e.id);
  /** A stream's event once it shows what `/top?query` answers now: earlier tests' changes may still be on their way. */
  const settled = async (s: SseStream, query: string): Promise<SseEvent> => {
    const now = JSON.stringify(await top(query));
    await s.until(() => s.events.length > 0 && JSON.stringify(dataOf(s.events.at(-1)!).rows) === now, 5000, `the current top (${query})`);
    return s.events.at(-1)!;
  };
  const contents = (evs: SseEvent[]) => evs.map((e) => JSON.stringify(dataOf(e).rows ?? dataOf(e)));

  before(async function () {
    skipUnlessInstalled(this);
    running = await startTestStack('lb-live-', {
      replicas: 3,
      gateways: 2,
      workers: 1,
      metrics: false,
      // The burst below writes faster than a player's bucket allows.
      env: { ACCESS_LOG: 'false', LOG_LEVEL: 'warn', USER_RATE_LIMIT_COUNT: '1000000' },
      // A replica silent for 3 heartbeats (1.5 s) hands its channels on; idle channels go after 5 s.
      envFor: { service: { LIVE_REFRESH_MS: '500' } },
      live: { heartbeatMs: 1000, maxStreamsPerIp: CAP },
    });
    stack = running.stack;
    for (const [i, id] of ['live_a', 'live_b', 'live_c', 'live_d', 'live_e', 'live_f'].entries()) {
      const r = await post(`${stack.url}/auth/register`, { user_id: id, name: id, region: ['EU', 'NA', 'ASIA'][i % 3], password: 'a long enough password', initialScore: 100 - i });
      expect(r.status, JSON.stringify(r.body)).to.equal(201);
      tokens.set(id, r.body.token);
    }
  });
  beforeEach(() => {
    address = `127.0.0.${nextAddress++}`;
  });
  afterEach(() => {
    for (const s of streams.splice(0)) s.close();
  });
  after(async () => {
    await running?.stop();
  });

  it('when a client streams /live, then nginx answers the stream\'s headers and retry, the current top at once in /top\'s shape, then heartbeats', async () => {
    const s = await open('/live?region=GLOBAL&limit=3');
    expect(s.status).to.equal(200);
    expect(s.headers.get('content-type')).to.match(/^text\/event-stream/);
    expect(s.headers.get('cache-control')).to.equal('no-cache');
    expect(s.headers.get('x-accel-buffering')).to.equal('no');
    // The replica that checked the subscription, behind the gateway that forwarded it.
    expect(stack.serviceUrls).to.include(s.headers.get('x-upstream'));
    const first = await s.event(0);
    expect(s.retry).to.equal(3000);
    expect(first.event).to.equal('top');
    expect(first.id).to.match(NCHAN_ID);
    const data = dataOf(first);
    expect(data).to.include({ board: 'main', period: null, region: 'GLOBAL', limit: 3 });
    expect(data.at).to.be.a('number');
    expect(data.rows).to.deep.equal(await top('region=GLOBAL&limit=3'));
    await s.until(() => s.comments.includes('hb'), 5000, 'a heartbeat');
  });

  it('when the input is bad, then the platform\'s error JSON answers it through nginx before any stream (every case: leaderboard-service/test/live.test.ts)', async () => {
    const refused = async (path: string) => {
      const s = (await open(path)) as SseStream & { body?: any };
      return `${s.status} ${s.body?.error}`;
    };
    expect(await refused('/boards/no-such-board/live')).to.equal('404 board_not_found');
    expect(await refused(`/me/live?ticket=${tokens.get('live_a')!}`)).to.equal('401 invalid_token');
    // The internal locations are not reachable from outside.
    expect((await fetch(`${stack.url}/_lb_live/sub/live/GLOBAL/3`, { headers: { accept: 'text/event-stream' } })).status).to.equal(404);
  });

  it('when a write changes the watched top, then an event carries the new top; a change below it sends nothing', async () => {
    const s = await open('/live?region=GLOBAL&limit=2');
    const first = dataOf(await s.event(0));
    // live_f is far below the top 2 (and within the first 100: the change is published to the replicas).
    await setScore('live_f', 60);
    await sleep(QUIET_MS);
    expect(s.events).to.have.length(1);
    await setScore('live_f', first.rows[0].score + 10);
    const next = dataOf(await s.event(1, 5000));
    expect(next.rows[0].user_id).to.equal('live_f');
    expect(next.rows).to.deep.equal(await top('region=GLOBAL&limit=2'));
  });

  it('when a board nobody watched gets its first watcher, then the first event is its current state', async () => {
    const s = await open('/live?region=ASIA&limit=7');
    expect(dataOf(await s.event(0)).rows).to.deep.equal(await top('region=ASIA&limit=7'));
  });

  it('when 300 writes change the top in a burst, then each stream gets at most ~5 events a second, never the same content twice, and the last one is the final top', async () => {
    const a = await open('/live?region=GLOBAL&limit=5');
    const b = await open('/live?region=GLOBAL&limit=5');
    await a.event(0);
    await b.event(0);
    const started = performance.now();
    let next = 0;
    const players = ['live_a', 'live_b', 'live_c', 'live_d', 'live_e', 'live_f'];
    // Every write puts its player first: the top changes 300 times.
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < 300) {
          const i = next++;
          await setScore(players[i % players.length]!, 10_000 + i);
        }
      }),
    );
    const final = await top('region=GLOBAL&limit=5');
    for (const s of [a, b]) {
      await s.until(() => JSON.stringify(dataOf(s.events.at(-1)!).rows) === JSON.stringify(final), 5000, 'the final top');
      const during = s.events.length - 1;
      expect(during, `${during} events`).to.be.at.most(Math.ceil((performance.now() - started) / 200) + 1);
      expect(during).to.be.at.least(1);
      expect(new Set(contents(s.events)).size, 'the same content twice').to.equal(s.events.length);
    }
    // Both streams are one channel: the same events, byte for byte.
    expect(a.events.at(-1)!.data).to.equal(b.events.at(-1)!.data);
    expect(a.events.at(-1)!.id).to.equal(b.events.at(-1)!.id);
  });

  it('when a client reconnects with the Last-Event-ID of the current event, then it gets no duplicate first event, only later changes; any other id gets the current top at once', async () => {
    const s = await open('/live?region=GLOBAL&limit=3');
    const first = await settled(s, 'region=GLOBAL&limit=3');
    s.close();
    const again = await open('/live?region=GLOBAL&limit=3', { 'last-event-id': first.id! });
    const byParam = await open(`/live?region=GLOBAL&limit=3&last_event_id=${encodeURIComponent(first.id!)}`);
    await sleep(QUIET_MS);
    expect(again.events).to.deep.equal([]);
    expect(byParam.events).to.deep.equal([]);
    const stale = await open('/live?region=GLOBAL&limit=3', { 'last-event-id': '1700000000:0' });
    expect((await stale.event(0)).id).to.equal(first.id);
    const leader = dataOf(first).rows[0];
    await setScore(dataOf(first).rows[2].user_id, leader.score + 1);
    for (const x of [again, byParam]) expect((await x.event(0, 5000)).id).not.to.equal(first.id);
  });

  it('when clients send junk event ids (and the forms that crash nchan 1.3.6), then each gets the current state at once and nginx keeps serving every stream', async () => {
    // A long-lived stream on another channel: it must outlive everything below.
    const witness = await open('/live?region=NA&limit=3');
    await witness.event(0);
    // On a channel nobody watched: `12:0` then `1:0` then a publication is the sequence that
    // crashes a 1.3.6 worker when the ids reach it (nchan's own test of the 1.3.7 fix).
    const channel = '/live?region=EU&limit=9';
    const junk = ['12:0', '1:0', '0:0', '0:0,0', '1:[0],1', '1:[0],[1]', '-1:-1', '99999999999:99999', '1:99999999', 'abc', ':1', '1:', `${Math.floor(Date.now() / 1000) + 3600}:0`, 'x'.repeat(2000)];
    const current = await top('region=EU&limit=9');
    for (const id of junk) {
      const viaHeader = await open(channel, { 'last-event-id': id });
      const viaParam = await open(`${channel}&last_event_id=${encodeURIComponent(id)}`);
      for (const s of [viaHeader, viaParam]) {
        expect(s.status, id).to.equal(200);
        expect(dataOf(await s.event(0)).rows, id).to.deep.equal(current);
        // Within this address's cap.
        s.close();
      }
    }
    // Conditional headers are ids to nchan too (If-Modified-Since is the time, If-None-Match the tag):
    // such requests reach it through the hop that drops them.
    const conditional = await open(channel, { 'if-modified-since': 'Thu, 01 Jan 1970 00:00:12 GMT', 'if-none-match': '0' });
    expect(dataOf(await conditional.event(0)).rows).to.deep.equal(current);
    // And a client that does not ask for text/event-stream (curl) still gets the stream.
    const curl = await open(channel, {}, { accept: null });
    expect(curl.headers.get('content-type')).to.match(/^text\/event-stream/);
    expect(curl.headers.get('cache-control')).to.equal('no-cache');
    expect(curl.headers.get('x-accel-buffering')).to.equal('no');
    expect(dataOf(await curl.event(0)).rows).to.deep.equal(current);
    expect(curl.retry).to.equal(3000);
    // Publications after all that: everyone gets them, nothing crashed.
    await setScore('live_a', 50_000); // EU
    await setScore('live_b', 50_000); // NA
    await conditional.eventWhere((e) => dataOf(e).rows[0]?.user_id === 'live_a', 5000);
    await curl.eventWhere((e) => dataOf(e).rows[0]?.user_id === 'live_a', 5000);
    await witness.eventWhere((e) => dataOf(e).rows[0]?.user_id === 'live_b', 5000);
    expect(witness.ended, 'the witness stream ended').to.equal(false);
    expect(nginxLog()).not.to.match(/exited on signal|Assertion/);
  });

  it('when one client address opens more streams than the cap, then nginx answers 429 too_many_streams, another address is not counted, and closing one frees a place', async () => {
    const held: SseStream[] = [];
    for (let i = 0; i < CAP; i++) held.push(await open('/live?region=GLOBAL&limit=3'));
    expect(held.map((s) => s.status)).to.deep.equal(Array(CAP).fill(200));
    const refused = (await open('/live?region=GLOBAL&limit=3')) as SseStream & { body?: any };
    expect(refused.status).to.equal(429);
    expect(refused.body).to.include({ error: 'too_many_streams', retry_after: 5 });
    expect(refused.body.message).to.be.a('string');
    expect(refused.headers.get('retry-after')).to.equal('5');
    // A board read from the same address is not a stream: still answered.
    expect((await fetch(`${stack.url}/top?region=GLOBAL&limit=1`)).status).to.equal(200);
    const other = await open('/live?region=GLOBAL&limit=3', {}, { localAddress: `127.0.0.${nextAddress++}` });
    expect(other.status).to.equal(200);
    held[0]!.close();
    const deadline = Date.now() + 5000;
    let again = refused as SseStream;
    while (again.status !== 200 && Date.now() < deadline) {
      await sleep(100);
      again = await open('/live?region=GLOBAL&limit=3');
    }
    expect(again.status).to.equal(200);
  });

  it('when writes change a board watched through 3 replicas, then each change is published exactly once', async () => {
    const key = readFileSync(stack.adminKeyFile, 'utf8').trim();
    const board = `once-${Date.now().toString(36)}`;
    const created = await post(`${stack.url}/admin/boards`, { id: board }, { headers: { 'x-api-key': key } });
    expect(created.status, JSON.stringify(created.body)).to.equal(201);
    // Watched through every replica: the gateways deal the subscriptions out round robin.
    const watchers: SseStream[] = [];
    for (let i = 0; i < 6; i++) watchers.push(await open(`/boards/${board}/live?region=GLOBAL&limit=5`, {}, { localAddress: `127.0.0.${nextAddress++}` }));
    expect(new Set(watchers.map((w) => w.headers.get('x-upstream'))).size, 'replicas that took subscriptions').to.be.at.least(2);
    for (const w of watchers) await w.event(0);
    const before = (await nchan()).total_published_messages!;
    const players = ['live_a', 'live_b', 'live_c', 'live_d', 'live_e'];
    for (const [i, user] of players.entries()) {
      const r = await post(`${stack.url}/boards/${board}/scores`, { score: 100 + i }, { token: tokens.get(user)! });
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
      // Each change is awaited before the next: it cannot be coalesced with it.
      for (const w of watchers) await w.eventWhere((e) => dataOf(e).rows[0]?.user_id === user, 5000);
    }
    await sleep(QUIET_MS);
    for (const w of watchers) {
      expect(w.events, 'one event per change').to.have.length(1 + players.length);
      expect(new Set(contents(w.events)).size).to.equal(w.events.length);
      expect(ids(w)).to.deep.equal(ids(watchers[0]!));
    }
    expect((await nchan()).total_published_messages! - before, 'messages published to nchan').to.equal(players.length);
  });

  it('when a player watches their card with a ticket, then it updates when another player overtakes them', async () => {
    const t = await post(`${stack.url}/me/live-ticket`, undefined, { token: tokens.get('live_c')! });
    expect(t.status, JSON.stringify(t.body)).to.equal(200);
    const s = await open(`/me/live?board=main&ticket=${encodeURIComponent(t.body.ticket)}`);
    expect(s.status).to.equal(200);
    const c0 = dataOf(await s.event(0));
    expect(s.events[0]!.event).to.equal('card');
    const rank = (await (await fetch(`${stack.url}/rank/live_c?region=GLOBAL`)).json()) as { rank: number; score: number };
    expect(c0).to.deep.include({ board: 'main', period: null, user_id: 'live_c', score: rank.score });
    expect(c0.rank.global).to.equal(rank.rank);
    // Someone overtakes live_c.
    const leader = (await top('region=GLOBAL&limit=1'))[0] as { score: number };
    await setScore('live_d', leader.score + 100);
    await setScore('live_c', leader.score + 50);
    await s.eventWhere((e) => dataOf(e).score === leader.score + 50, 5000);
    await setScore('live_e', leader.score + 60);
    const overtaken = dataOf(await s.eventWhere((e) => dataOf(e).rank.global === 3, 5000));
    expect(overtaken.score).to.equal(leader.score + 50);
  });

  it('when the replica that checked a stream is killed, then the stream stays open (nginx holds it) and another replica publishes its changes', async () => {
    const s = await open('/live?region=GLOBAL&limit=4');
    await s.event(0);
    const upstream = s.headers.get('x-upstream')!;
    const index = stack.serviceUrls.indexOf(upstream);
    expect(index, `X-Upstream ${upstream}`).to.be.at.least(0);
    await stack.kill(`leaderboard-service-${index + 1}`);
    const leader = (await top('region=GLOBAL&limit=1'))[0] as { score: number };
    await setScore('live_b', leader.score + 1000);
    // Published by a replica that runs (the dead one's channels move on once its heartbeat ages out).
    await s.eventWhere((e) => dataOf(e).rows[0]?.user_id === 'live_b', 15_000);
    expect(s.ended).to.equal(false);
    await stack.restart(`leaderboard-service-${index + 1}`);
  });

  it('when a gateway, then a replica, stop gracefully under open streams, then they exit 0 and the streams keep flowing', async () => {
    const s = await open('/live?region=GLOBAL&limit=4');
    await s.event(0);
    for (const name of ['api-gateway-1', 'leaderboard-service-2']) {
      const exit = await stack.kill(name, 'SIGTERM');
      expect(exit?.code, `${name} exit`).to.equal(0);
      const leader = (await top('region=GLOBAL&limit=1'))[0] as { score: number; user_id: string };
      const user = leader.user_id === 'live_d' ? 'live_e' : 'live_d';
      await setScore(user, leader.score + 1000);
      await s.eventWhere((e) => dataOf(e).rows[0]?.user_id === user, 15_000);
      expect(s.ended, `${name}: the stream ended`).to.equal(false);
    }
  });

  it('when nginx stops gracefully, then its streams end cleanly', async () => {
    const s = await open('/live?region=GLOBAL&limit=4');
    await s.event(0);
    await stack.kill('nginx', 'SIGQUIT');
    await s.until(() => s.ended, 10_000, 'the end of the stream');
    expect(s.error, 'ended by an error').to.equal(undefined);
  });
});
