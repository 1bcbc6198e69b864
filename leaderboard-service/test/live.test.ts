/**
 * Live pushes (Server-Sent Events) against a real service and the harness'
 * Redis shards: the first event, coalescing under a burst, Last-Event-ID,
 * silence for changes outside the watched top N, streams per board and
 * period, the player's card with a ticket, 401s, and /health's counts.
 */
import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { uniqueId } from '@lb/devtools/testing';
import { dataOf, SseStream } from '../../test/support/sse.js';
import { ApiKeysRepo } from '../src/db/api-keys-repo.js';
import { Client, startService, type TestService } from './support/service.js';

/** How long "nothing is pushed" is watched for: several coalescing intervals and one card refresh. */
const QUIET_MS = 1200;

describe('live streams (SSE)', function () {
  this.timeout(60_000);
  let svc: TestService;
  let api: Client;
  let now = Date.parse('2026-12-01T12:00:00Z');
  const streams: SseStream[] = [];
  /** Opens a stream on the service (closed after each test). */
  const open = async (path: string, headers: Record<string, string> = {}) => {
    const s = await SseStream.open(svc.url + path, { headers });
    streams.push(s);
    return s;
  };
  const tokens = new Map<string, string>();
  const register = async (id: string, region: string, score: number) => {
    tokens.set(id, await api.register(id, region, { initialScore: score }));
  };
  const setScore = async (id: string, score: number) => {
    const r = await api.post('/score/update', { score }, { token: tokens.get(id)! });
    expect(r.status, JSON.stringify(r.body)).to.equal(200);
  };

  before(async () => {
    svc = await startService({ LIVE_HEARTBEAT_MS: '300' }, { clock: () => now });
    api = new Client(svc.url);
    // p01 (100) ... p12 (12 × 5 ...): a board with a known order.
    for (let i = 1; i <= 12; i++) await register(`p${String(i).padStart(2, '0')}`, ['NA', 'EU', 'ASIA'][i % 3]!, 1000 - i * 10);
  });
  afterEach(() => {
    for (const s of streams.splice(0)) s.close();
  });
  after(async () => {
    await svc?.stop();
  });

  it('when a client connects, then it gets the headers, retry, and at once the current top N in /top\'s row shape, then heartbeats', async () => {
    const s = await open('/live?region=GLOBAL&limit=3');
    expect(s.status).to.equal(200);
    expect(s.headers.get('content-type')).to.match(/^text\/event-stream/);
    expect(s.headers.get('cache-control')).to.equal('no-cache');
    expect(s.headers.get('x-accel-buffering')).to.equal('no');
    const first = await s.event(0);
    expect(s.retry).to.equal(3000);
    expect(first.event).to.equal('top');
    expect(first.id).to.match(/^-\.[0-9a-f]{16}$/);
    const top = await api.get('/top?region=GLOBAL&limit=3');
    const data = dataOf(first);
    expect(data).to.include({ board: 'main', period: null, region: 'GLOBAL', limit: 3 });
    expect(data.at).to.be.a('number');
    expect(data.rows).to.deep.equal(top.body.rows);
    expect(data.rows.map((r: { user_id: string }) => r.user_id)).to.deep.equal(['p01', 'p02', 'p03']);
    await s.until(() => s.comments.includes('hb'), 3000, 'a heartbeat');
  });

  it('when the input is bad, then the platform\'s error JSON answers it', async () => {
    const bad = async (path: string) => {
      const s = await open(path);
      return { status: s.status, body: (s as SseStream & { body?: any }).body };
    };
    expect(await bad('/live?limit=101')).to.deep.include({ status: 400 });
    expect((await bad('/live?limit=101')).body.error).to.equal('invalid_query');
    expect((await bad('/live?region=MARS')).body.error).to.equal('unknown_region');
    expect(await bad('/boards/no-such-board/live')).to.deep.equal({ status: 404, body: { error: 'board_not_found', message: 'no board no-such-board', board: 'no-such-board' } });
  });

  it('when 1,000 writes change the top in a burst, then each stream gets at most ~5 events a second and the last one is the final top', async () => {
    const a = await open('/live?region=GLOBAL&limit=5');
    const b = await open('/live?region=GLOBAL&limit=5');
    await a.event(0);
    await b.event(0);
    const started = performance.now();
    let next = 0;
    const ids = ['p01', 'p02', 'p03', 'p04', 'p05', 'p06', 'p07', 'p08', 'p09', 'p10'];
    // Every write puts its player first: the top changes 1,000 times.
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < 1000) {
          const i = next++;
          await setScore(ids[i % ids.length]!, 2000 + i);
        }
      }),
    );
    const elapsed = performance.now() - started;
    const final = (await api.get('/top?region=GLOBAL&limit=5')).body.rows;
    for (const s of [a, b]) {
      await s.until(() => JSON.stringify(dataOf(s.events.at(-1)!).rows) === JSON.stringify(final), 3000, 'the final top');
      // Events after the first, during the burst and the settling that followed.
      const during = s.events.length - 1;
      const allowed = Math.ceil((performance.now() - started) / 200) + 1;
      expect(during, `${during} events in ${Math.round(elapsed)} ms of writes`).to.be.at.most(allowed);
      expect(during).to.be.at.least(1);
      // Never two events for the same content.
      const ids2 = s.events.map((e) => e.id);
      expect(new Set(ids2).size).to.equal(ids2.length);
    }
    // Both streams watch the same thing: the same events, byte for byte.
    expect(a.events.at(-1)!.data).to.equal(b.events.at(-1)!.data);
  });

  it('when a client reconnects with the Last-Event-ID of the current top, then it gets no duplicate first event, only later changes', async () => {
    const s = await open('/live?region=GLOBAL&limit=3');
    const first = await s.event(0);
    s.close();
    const again = await open('/live?region=GLOBAL&limit=3', { 'last-event-id': first.id! });
    await sleep(QUIET_MS);
    expect(again.events).to.deep.equal([]);
    const stale = await open('/live?region=GLOBAL&limit=3', { 'last-event-id': '-.0000000000000000' });
    expect((await stale.event(0)).id).to.equal(first.id);
    // A change still arrives.
    const leader = dataOf(first).rows[0];
    await setScore(dataOf(first).rows[2].user_id, leader.score + 1);
    const changed = await again.event(0, 3000);
    expect(changed.id).not.to.equal(first.id);
  });

  it('when a change happens outside the watched top N, then nothing is pushed', async () => {
    const s = await open('/live?region=GLOBAL&limit=3');
    const first = await s.event(0);
    const top3 = dataOf(first).rows;
    // p11 and p12 are far below the top 3 (and within the first 100: the change is published).
    await setScore('p11', 15);
    await setScore('p12', 14);
    await sleep(QUIET_MS);
    expect(s.events.length).to.equal(1);
    await setScore('p12', top3[0].score + 5);
    const next = await s.event(1, 3000);
    expect(dataOf(next).rows[0].user_id).to.equal('p12');
  });

  it('when named boards are watched, then each stream follows its own board and period', async () => {
    const key = (await new ApiKeysRepo(svc.deps.pools, svc.deps.router.shards[0]!.id).create('live')).key;
    const boardA = `live-a-${uniqueId('').toLowerCase().replace(/[^a-z0-9]/g, '').slice(-8)}`;
    const boardB = `live-b-${uniqueId('').toLowerCase().replace(/[^a-z0-9]/g, '').slice(-8)}`;
    for (const id of [boardA, boardB]) {
      const r = await api.post('/admin/boards', { id, reset: 'daily' }, { headers: { 'x-api-key': key } });
      expect(r.status, JSON.stringify(r.body)).to.equal(201);
    }
    const submit = async (board: string, user: string, score: number) => {
      const r = await api.post(`/boards/${board}/scores`, { score, metadata: { car: 'red' } }, { token: tokens.get(user)! });
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
    };
    await submit(boardA, 'p01', 50);
    const a = await open(`/boards/${boardA}/live?region=GLOBAL&limit=10`);
    const b = await open(`/boards/${boardB}/live?region=GLOBAL&limit=10`);
    const a0 = dataOf(await a.event(0));
    expect(a0).to.include({ board: boardA, period: '2026-12-01', region: 'GLOBAL', limit: 10 });
    expect(a0.rows).to.deep.equal((await api.get(`/boards/${boardA}/top?region=GLOBAL&limit=10`)).body.rows);
    expect(a0.rows[0]).to.deep.include({ user_id: 'p01', score: 50, metadata: { car: 'red' } });
    expect((await a.event(0)).id).to.match(/^2026-12-01\.[0-9a-f]{16}$/);
    expect(dataOf(await b.event(0)).rows).to.deep.equal([]);

    await submit(boardA, 'p02', 60);
    expect(dataOf(await a.event(1, 3000)).rows.map((r: { user_id: string }) => r.user_id)).to.deep.equal(['p02', 'p01']);
    // The next day: a write lands in the new period; the stream of the old one hears nothing.
    now += 24 * 3600_000;
    await submit(boardA, 'p03', 70);
    const day2 = await open(`/boards/${boardA}/live?region=GLOBAL&limit=10`);
    const d0 = dataOf(await day2.event(0));
    expect(d0.period).to.equal('2026-12-02');
    expect(d0.rows.map((r: { user_id: string }) => r.user_id)).to.deep.equal(['p03']);
    await sleep(QUIET_MS);
    expect(a.events.length).to.equal(2);
    expect(b.events.length).to.equal(1);

    // A player's card on a named board: not on it yet, then on it once they write.
    const card = await open(`/me/live?board=${boardB}`, { authorization: `Bearer ${tokens.get('p04')!}` });
    expect(dataOf(await card.event(0))).to.deep.include({ board: boardB, period: '2026-12-02', user_id: 'p04', score: null, rank: { region: null, global: null } });
    await submit(boardB, 'p04', 5);
    const c1 = dataOf(await card.event(1, 3000));
    expect(c1).to.deep.include({ score: 5, rank: { region: 1, global: 1 } });
  });

  it('when a player watches their card with a ticket, then it updates when another player overtakes them; bad tickets are 401', async () => {
    const t = await api.post('/me/live-ticket', undefined, { token: tokens.get('p05')! });
    expect(t.status, JSON.stringify(t.body)).to.equal(200);
    expect(t.body.expires_in).to.equal(30);
    const s = await open(`/me/live?board=main&ticket=${encodeURIComponent(t.body.ticket)}`);
    expect(s.status).to.equal(200);
    const c0 = dataOf(await s.event(0));
    const rank = await api.get('/rank/p05?region=GLOBAL');
    const regional = await api.get(`/rank/p05?region=${rank.body.region}`);
    const around = await api.get('/around/p05?region=GLOBAL&range=2');
    expect(s.events[0]!.event).to.equal('card');
    expect(c0).to.deep.include({
      board: 'main',
      period: null,
      user_id: 'p05',
      name: 'Name p05',
      score: rank.body.score,
      rank: { region: regional.body.rank, global: rank.body.rank },
      percentile: { region: regional.body.percentile, global: rank.body.percentile },
    });
    expect(c0.around).to.deep.equal(around.body.around);
    expect(c0.around).to.have.length.at.least(2);

    // p11 overtakes p05.
    await setScore('p11', rank.body.score + 1);
    const c1 = dataOf(await s.eventWhere((e) => dataOf(e).rank.global === rank.body.rank + 1, 3000));
    expect(c1.score).to.equal(rank.body.score);

    // 401s: a bad ticket, none, an access token as a ticket; a ticket is no access token.
    const status = async (path: string, headers: Record<string, string> = {}) => {
      const x = (await open(path, headers)) as SseStream & { body?: any };
      return `${x.status} ${x.body?.error}`;
    };
    expect(await status('/me/live?ticket=not.a.ticket')).to.equal('401 invalid_token');
    expect(await status('/me/live')).to.equal('401 missing_token');
    expect(await status(`/me/live?ticket=${tokens.get('p05')!}`)).to.equal('401 invalid_token');
    const write = await api.post('/score/update', { score: 1 }, { token: t.body.ticket });
    expect(write.status).to.equal(401);
    expect((await api.post('/me/live-ticket', undefined, {})).status).to.equal(401);
  });

  it('when a stream outlives the server\'s request timeouts, then it stays open and keeps its heartbeats', async () => {
    // Node's whole-request timeout is headers + body + 1 s: 3 s here.
    const short = await startService({ HEADERS_TIMEOUT_MS: '1000', BODY_TIMEOUT_MS: '1000', LIVE_HEARTBEAT_MS: '300' });
    try {
      const s = await SseStream.open(`${short.url}/live?region=NA&limit=1`);
      streams.push(s);
      await s.event(0);
      await sleep(4000);
      const seen = s.comments.length;
      await s.until(() => s.comments.length > seen, 2000, 'a heartbeat after the request timeout');
      expect(s.ended).to.equal(false);
    } finally {
      for (const s of streams.splice(0)) s.close();
      await short.stop();
    }
  });

  it('when streams are open, then /health counts them by kind, until they close', async () => {
    const health = async () => (await api.get('/health')).body.streams;
    expect(await health()).to.deep.equal({ top: 0, me: 0 });
    const x = await open('/live?region=EU&limit=2');
    const y = await open('/live?region=EU&limit=2');
    const z = await open('/me/live', { authorization: `Bearer ${tokens.get('p06')!}` });
    await Promise.all([x.event(0), y.event(0), z.event(0)]);
    expect(await health()).to.deep.equal({ top: 2, me: 1 });
    // The same counts for Prometheus, and the events written.
    const text = await svc.deps.metrics.registry.text();
    expect(text).to.match(/^lb_live_streams\{[^}]*kind="top"[^}]*\} 2$/m);
    expect(text).to.match(/^lb_live_streams\{[^}]*kind="me"[^}]*\} 1$/m);
    expect(Number(/^lb_live_events_total\{[^}]*kind="top"[^}]*\} (\d+)$/m.exec(text)?.[1])).to.be.at.least(2);
    for (const s of streams.splice(0)) s.close();
    const deadline = Date.now() + 3000;
    let last = await health();
    while ((last.top !== 0 || last.me !== 0) && Date.now() < deadline) {
      await sleep(50);
      last = await health();
    }
    expect(last).to.deep.equal({ top: 0, me: 0 });
  });
});
