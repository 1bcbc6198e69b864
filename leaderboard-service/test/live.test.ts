/**
 * Live pushes from the replicas' side, against three real replicas sharing
 * the harness' Redis shards (one key prefix: one platform) and a stand-in
 * for nginx's publisher location that records what they publish
 * (support/fake-nchan.ts; the real module is test/live.e2e.test.ts's). A
 * subscription is checked once and answered with an X-Accel-Redirect; the
 * first message of a new channel is its current state; each change is
 * published once across the replicas, coalesced; only an id nchan holds is
 * passed on; idle channels are dropped; a period's end ends its channel; a
 * replica that stops hands its channels on; the card with a ticket.
 */
import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { shardKeys } from '@lb/common/contracts';
import { uniqueId } from '@lb/devtools/testing';
import { ApiKeysRepo } from '../src/db/api-keys-repo.js';
import { FakeNchan, type Publication } from './support/fake-nchan.js';
import { Client, startService, type TestService } from './support/service.js';

/** The replicas' heartbeat: a channel nobody watches is dropped after 10 of them. */
const REFRESH_MS = 200;
/** How long "nothing is published" is watched for: several coalescing intervals and heartbeats. */
const QUIET_MS = 1200;

/** Resolves when `test` holds, polling; rejects after `timeoutMs`. */
async function until(test: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(20);
  }
}

describe('live pushes: the replicas publish to nchan', function () {
  this.timeout(60_000);
  const replicas: TestService[] = [];
  let nchan: FakeNchan;
  let api: Client;
  const prefix = `t${uniqueId('').replace(/[^a-z0-9]/gi, '').toLowerCase().slice(-10)}`;
  let now = Date.parse('2026-12-01T12:00:00Z');
  const tokens = new Map<string, string>();
  const setScore = async (id: string, score: number, via = api) => {
    const r = await via.post('/score/update', { score }, { token: tokens.get(id)! });
    expect(r.status, JSON.stringify(r.body)).to.equal(200);
  };
  /** A subscription as nginx forwards it (Accept: text/event-stream), through replica `i`. */
  const subscribe = (path: string, i = 0, headers: Record<string, string> = {}) => new Client(replicas[i]!.url).get(path, { headers: { accept: 'text/event-stream', ...headers } });
  const redirectOf = (r: { headers: Headers }) => r.headers.get('x-accel-redirect');
  const contents = (ps: Publication[]) => ps.map((p) => JSON.stringify(p.data.rows ?? p.data));

  before(async () => {
    nchan = await new FakeNchan().start();
    const env = { KEY_PREFIX: prefix, LIVE_PUBLISH_URL: nchan.url, LIVE_REFRESH_MS: String(REFRESH_MS) };
    for (let i = 0; i < 3; i++) replicas.push(await startService({ ...env, INSTANCE_ID: `live-${i + 1}` }, { clock: () => now }));
    api = new Client(replicas[0]!.url);
    // p01 (990) ... p12 (880): a board with a known order; p03, p06... are in NA, p01, p04... in EU, p02, p05... in ASIA.
    for (let i = 1; i <= 12; i++) {
      const id = `p${String(i).padStart(2, '0')}`;
      tokens.set(id, await api.register(id, ['NA', 'EU', 'ASIA'][i % 3]!, { initialScore: 1000 - i * 10 }));
    }
    // Every replica sees the three members before the tests count publications.
    await sleep(3 * REFRESH_MS);
  });
  after(async () => {
    for (const r of replicas) await r.stop();
    await nchan?.stop();
  });

  it('when a channel nobody watched is subscribed to, then the replica publishes its current state and answers an X-Accel-Redirect to nginx\'s subscriber location', async () => {
    const r = await subscribe('/live?region=GLOBAL&limit=3');
    expect(r.status).to.equal(200);
    expect(redirectOf(r)).to.equal('/_lb_live/sub/live/GLOBAL/3');
    expect(r.body).to.equal('');
    const [first, ...more] = nchan.of('live/GLOBAL/3');
    expect(more).to.deep.equal([]);
    expect(first!.event).to.equal('top');
    expect(first!.data).to.include({ board: 'main', period: null, region: 'GLOBAL', limit: 3 });
    expect(first!.data.at).to.be.a('number');
    expect(first!.data.rows).to.deep.equal((await api.get('/top?region=GLOBAL&limit=3')).body.rows);
    // Through another replica: the channel has its message, nothing more is published.
    expect(redirectOf(await subscribe('/live?region=GLOBAL&limit=3', 1))).to.equal('/_lb_live/sub/live/GLOBAL/3');
    await sleep(QUIET_MS);
    expect(nchan.of('live/GLOBAL/3')).to.have.length(1);
  });

  it('when a HEAD or bad input arrives, then it is answered without a subscription: the stream\'s headers, or the platform\'s error JSON', async () => {
    const head = await fetch(`${replicas[0]!.url}/live?region=NA&limit=4`, { method: 'HEAD' });
    expect(head.status).to.equal(200);
    expect(head.headers.get('content-type')).to.match(/^text\/event-stream/);
    expect(head.headers.get('x-accel-redirect')).to.equal(null);
    const bad = async (path: string, headers: Record<string, string> = {}) => {
      const r = await subscribe(path, 0, headers);
      expect(redirectOf(r), path).to.equal(null);
      return { status: r.status, error: r.body.error };
    };
    expect(await bad('/live?limit=101')).to.deep.equal({ status: 400, error: 'invalid_query' });
    expect(await bad('/live?region=MARS')).to.deep.equal({ status: 400, error: 'unknown_region' });
    expect(await bad('/boards/no-such-board/live')).to.deep.equal({ status: 404, error: 'board_not_found' });
    expect(await bad('/me/live')).to.deep.equal({ status: 401, error: 'missing_token' });
    expect(await bad('/me/live?ticket=not.a.ticket')).to.deep.equal({ status: 401, error: 'invalid_token' });
    expect(await bad(`/me/live?ticket=${tokens.get('p05')!}`)).to.deep.equal({ status: 401, error: 'invalid_token' });
    expect(nchan.of('live/NA/4')).to.deep.equal([]);
  });

  it('when a client sends an event id, then only nchan\'s id of the channel\'s current message is passed on; junk, stale and crash-prone ids are dropped', async () => {
    await subscribe('/live?region=EU&limit=2');
    const current = nchan.lastId('live/EU/2');
    expect(current).to.match(/^\d+:\d+$/);
    expect(redirectOf(await subscribe('/live?region=EU&limit=2', 1, { 'last-event-id': current }))).to.equal(`/_lb_live/sub/live/EU/2?lid=${current}`);
    expect(redirectOf(await subscribe(`/live?region=EU&limit=2&last_event_id=${encodeURIComponent(current)}`, 2))).to.equal(`/_lb_live/sub/live/EU/2?lid=${current}`);
    for (const junk of ['12:0', '1:0', '0:0', '0:0,0', `${current},0`, '1:[0],1', '-1:-1', '99999999999:99999', 'abc', `${current}x`, `0${current}`, '1700000000:0']) {
      expect(redirectOf(await subscribe('/live?region=EU&limit=2', 0, { 'last-event-id': junk })), junk).to.equal('/_lb_live/sub/live/EU/2');
    }
    // nchan reads conditional headers as ids, and serves an EventSource only to who asks for text/event-stream:
    // those requests go through the hop that sends nchan nothing else.
    expect(redirectOf(await subscribe('/live?region=EU&limit=2', 0, { 'if-none-match': '0', 'if-modified-since': 'Thu, 01 Jan 1970 00:00:12 GMT' }))).to.equal('/_lb_live/via/live/EU/2');
    expect(redirectOf(await new Client(replicas[0]!.url).get('/live?region=EU&limit=2'))).to.equal('/_lb_live/via/live/EU/2');
    // nginx restarted (its messages are gone): the current id is no longer held, the state is published again.
    nchan.forgetMessages();
    expect(redirectOf(await subscribe('/live?region=EU&limit=2', 1, { 'last-event-id': current }))).to.equal('/_lb_live/sub/live/EU/2');
    expect(nchan.of('live/EU/2')).to.have.length(2);
  });

  it('when writes change a board watched through 3 replicas, then each change is published exactly once, and a change below the watched top not at all', async () => {
    for (let i = 0; i < 3; i++) await subscribe('/live?region=GLOBAL&limit=5', i);
    const channel = 'live/GLOBAL/5';
    const base = nchan.of(channel).length;
    expect(base).to.equal(1);
    const changes = ['p07', 'p08', 'p09', 'p10'];
    for (const [i, user] of changes.entries()) {
      await setScore(user, 5000 + i, new Client(replicas[i % 3]!.url));
      // Each change is awaited before the next: it cannot be coalesced with it.
      await until(() => nchan.of(channel).at(-1)?.data.rows[0]?.user_id === user, 5000, `the change by ${user}`);
    }
    // p12 is far below the top 5 (and within the first 100: the change reaches the replicas).
    await setScore('p12', 1);
    await sleep(QUIET_MS);
    const ps = nchan.of(channel);
    expect(ps, 'publications').to.have.length(base + changes.length);
    expect(new Set(contents(ps)).size).to.equal(ps.length);
    // One replica publishes the channel; /health counts it there.
    expect(replicas.filter((r) => r.deps.live.publishes(channel))).to.have.length(1);
    const counts = await Promise.all(replicas.map(async (r) => (await new Client(r.url).get('/health')).body.live_channels as { top: number; me: number }));
    expect(counts.reduce((a, c) => a + c.top, 0)).to.equal(replicas.reduce((a, r) => a + r.deps.live.channels().top, 0));
  });

  it('when 500 writes change the top in a burst, then the channel is published at most ~5 times a second, never the same content twice, and last with the final top', async () => {
    await subscribe('/live?region=GLOBAL&limit=4', 1);
    const channel = 'live/GLOBAL/4';
    const base = nchan.of(channel).length;
    const started = performance.now();
    let next = 0;
    const ids = ['p01', 'p02', 'p03', 'p04', 'p05', 'p06'];
    await Promise.all(
      Array.from({ length: 12 }, async (_, w) => {
        const via = new Client(replicas[w % 3]!.url);
        while (next < 500) {
          const i = next++;
          await setScore(ids[i % ids.length]!, 20_000 + i, via);
        }
      }),
    );
    const final = (await api.get('/top?region=GLOBAL&limit=4')).body.rows;
    await until(() => JSON.stringify(nchan.of(channel).at(-1)!.data.rows) === JSON.stringify(final), 5000, 'the final top');
    const ps = nchan.of(channel).slice(base);
    expect(ps.length).to.be.at.least(1);
    expect(ps.length, `${ps.length} publications`).to.be.at.most(Math.ceil((performance.now() - started) / 200) + 1);
    expect(new Set(contents(ps)).size).to.equal(ps.length);
  });

  it('when nchan reports a channel has no subscriber any more, then it is dropped: no longer computed nor published', async () => {
    const channel = 'live/ASIA/3';
    await subscribe('/live?region=ASIA&limit=3', 2);
    const shard = replicas[0]!.deps.router.homeShard('', 'ASIA').id;
    const store = replicas[0]!.deps.stores.get(shard);
    const keys = shardKeys(shard, prefix).live;
    expect(await store.client.zScore(keys.channels, channel)).to.be.a('number');
    nchan.subscribers.set(channel, 0);
    await until(async () => (await store.client.zScore(keys.channels, channel)) === null, 10 * REFRESH_MS + 5000, 'the registration dropped');
    const count = nchan.of(channel).length;
    const top = (await api.get('/top?region=ASIA&limit=1')).body.rows[0];
    const asian = [...tokens.keys()].find((id) => Number(id.slice(1)) % 3 === 2)!;
    await setScore(asian, top.score + 100);
    await sleep(QUIET_MS);
    expect(nchan.of(channel)).to.have.length(count);
    expect(replicas.filter((r) => r.deps.live.publishes(channel))).to.deep.equal([]);
  });

  it('when a player watches their card with a ticket, then it is published at once and again when another player overtakes them', async () => {
    const t = await api.post('/me/live-ticket', undefined, { token: tokens.get('p11')! });
    expect(t.status, JSON.stringify(t.body)).to.equal(200);
    expect(t.body.expires_in).to.equal(30);
    const r = await subscribe(`/me/live?board=main&ticket=${encodeURIComponent(t.body.ticket)}`, 2);
    expect(redirectOf(r)).to.equal('/_lb_live/sub/card/main/all/p11');
    const card = () => nchan.of('card/main/all/p11').at(-1)!;
    expect(card().event).to.equal('card');
    const rank = await api.get('/rank/p11?region=GLOBAL');
    const regional = await api.get(`/rank/p11?region=${rank.body.region}`);
    expect(card().data).to.deep.include({
      board: 'main',
      period: null,
      user_id: 'p11',
      name: 'Name p11',
      score: rank.body.score,
      rank: { region: regional.body.rank, global: rank.body.rank },
      percentile: { region: regional.body.percentile, global: rank.body.percentile },
    });
    expect(card().data.around).to.deep.equal((await api.get('/around/p11?region=GLOBAL&range=2')).body.around);
    // p12 overtakes p11.
    await setScore('p12', rank.body.score + 1);
    await until(() => card().data.rank.global === rank.body.rank + 1, 5000, 'the card after being overtaken');
    // A ticket is no access token.
    expect((await api.post('/score/update', { score: 1 }, { token: t.body.ticket })).status).to.equal(401);
  });

  it('when a named board\'s period ends, then the channel of that period is ended (its streams end; clients reconnect to the next one)', async () => {
    const key = (await new ApiKeysRepo(replicas[0]!.deps.pools, replicas[0]!.deps.router.shards[0]!.id).create('live')).key;
    const board = `live-${uniqueId('').toLowerCase().replace(/[^a-z0-9]/g, '').slice(-8)}`;
    const made = await api.post('/admin/boards', { id: board, reset: 'daily' }, { headers: { 'x-api-key': key } });
    expect(made.status, JSON.stringify(made.body)).to.equal(201);
    await until(async () => (await Promise.all(replicas.map((r) => new Client(r.url).get(`/boards/${board}`)))).every((x) => x.status === 200), 5000, 'the board on every replica');
    const submit = await api.post(`/boards/${board}/scores`, { score: 50, metadata: { car: 'red' } }, { token: tokens.get('p01')! });
    expect(submit.status, JSON.stringify(submit.body)).to.equal(200);
    // 300 ms before the day ends.
    now = Date.parse('2026-12-01T23:59:59.700Z');
    const r = await subscribe(`/boards/${board}/live?region=GLOBAL&limit=10`, 1);
    expect(redirectOf(r)).to.equal(`/_lb_live/sub/top/${board}/2026-12-01/GLOBAL/10`);
    const first = nchan.of(`top/${board}/2026-12-01/GLOBAL/10`)[0]!;
    expect(first.data).to.include({ board, period: '2026-12-01', region: 'GLOBAL', limit: 10 });
    expect(first.data.rows[0]).to.deep.include({ user_id: 'p01', score: 50, metadata: { car: 'red' } });
    now = Date.parse('2026-12-02T00:00:00.100Z');
    await until(() => nchan.deleted.includes(`top/${board}/2026-12-01/GLOBAL/10`), 5000, 'the ended period\'s channel deleted');
    // The next subscription follows the new period.
    expect(redirectOf(await subscribe(`/boards/${board}/live?region=GLOBAL&limit=10`, 2))).to.equal(`/_lb_live/sub/top/${board}/2026-12-02/GLOBAL/10`);
    expect(nchan.of(`top/${board}/2026-12-02/GLOBAL/10`)[0]!.data.rows).to.deep.equal([]);
  });

  it('when the replica publishing a channel stops, then another one publishes its changes', async () => {
    await subscribe('/live?region=NA&limit=2', 0);
    const channel = 'live/NA/2';
    // Its publisher learns of it at its next heartbeat, unless it took the subscription itself.
    await until(() => replicas.some((r) => r.deps.live.publishes(channel)), 5000, 'a publisher of the channel');
    const owner = replicas.findIndex((r) => r.deps.live.publishes(channel));
    const [stopped] = replicas.splice(owner, 1);
    await stopped!.stop();
    const via = new Client(replicas[0]!.url);
    const top = (await via.get('/top?region=NA&limit=1')).body.rows[0];
    const american = [...tokens.keys()].find((id) => Number(id.slice(1)) % 3 === 0 && id !== top.user_id)!;
    await setScore(american, top.score + 100, via);
    await until(() => nchan.of(channel).at(-1)?.data.rows[0]?.user_id === american, 5000, 'the change published by another replica');
  });
});
