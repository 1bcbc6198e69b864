/**
 * Live pushes from the replicas' side, against three real replicas sharing
 * the harness' Redis shards (one key prefix: one platform) and a real
 * nginx with nchan, started by support/live-nginx.ts as the stack starts
 * it. The replicas publish to its internal live server; what they
 * published is read from nchan itself: the streams of subscribers that
 * follow a replica's X-Accel-Redirect, and the channels' info (messages,
 * subscribers, last id) from the publisher location. A subscription is
 * checked once and answered with an X-Accel-Redirect; the first message of
 * a new channel is its current state; each change is published once across
 * the replicas, coalesced; only an id nchan holds is passed on; channels
 * nobody subscribes to are dropped; a period's end ends its channel; a
 * replica that stops hands its channels on; the card with a ticket.
 */
import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { rendezvous, shardKeys } from '@lb/common/contracts';
import { createLogger, topologyJson } from '@lb/common/platform';
import { uniqueId } from '@lb/devtools/testing';
import { dataOf, SseStream, type SseEvent } from '../../test/support/sse.js';
import { skipUnlessInstalled } from '../../test/support/test-stack.js';
import { loadConfig } from '../src/config.js';
import { ApiKeysRepo } from '../src/db/api-keys-repo.js';
import { createDeps } from '../src/deps.js';
import { LiveNginx } from './support/live-nginx.js';
import { Client, startService, TEST_SECRET, type TestService } from './support/service.js';

/** The replicas' heartbeat: a channel nobody watches is dropped after 10 of them. */
const REFRESH_MS = 200;
/** How long "nothing is published" is watched for: several coalescing intervals and heartbeats. */
const QUIET_MS = 1200;
/** nchan's message ids: `<unix seconds>:<tag>`. */
const NCHAN_ID = /^\d+:\d+$/;

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
  let nginx: LiveNginx | undefined;
  let api: Client;
  const prefix = `t${uniqueId('').replace(/[^a-z0-9]/gi, '').toLowerCase().slice(-10)}`;
  let now = Date.parse('2026-12-01T12:00:00Z');
  const tokens = new Map<string, string>();
  /** The streams a test opened, closed after it. */
  const streams: SseStream[] = [];
  const setScore = async (id: string, score: number, via = api) => {
    const r = await via.post('/score/update', { score }, { token: tokens.get(id)! });
    expect(r.status, JSON.stringify(r.body)).to.equal(200);
  };
  /** A subscription as nginx forwards it (Accept: text/event-stream), through replica `i`. */
  const subscribe = (path: string, i = 0, headers: Record<string, string> = {}) => new Client(replicas[i]!.url).get(path, { headers: { accept: 'text/event-stream', ...headers } });
  const redirectOf = (r: { headers: Headers }) => r.headers.get('x-accel-redirect');
  /** A subscriber on the channel `redirect` names, as nginx turns the replica's answer into a stream. */
  const follow = async (redirect: string | null) => {
    expect(redirect, 'an X-Accel-Redirect').to.be.a('string');
    const s = await nginx!.follow(redirect!);
    streams.push(s);
    expect(s.status, redirect!).to.equal(200);
    return s;
  };
  /** Subscribes through replica `i` and follows the redirect: a watcher of the channel. */
  const watch = async (path: string, i = 0) => follow(redirectOf(await subscribe(path, i)));
  const info = (channel: string) => nginx!.info(channel);
  const contents = (evs: SseEvent[]) => evs.map((e) => JSON.stringify(dataOf(e).rows ?? dataOf(e)));
  const last = (s: SseStream) => (s.events.length > 0 ? dataOf(s.events.at(-1)!) : undefined);

  before(async function () {
    skipUnlessInstalled(this, ['nginx', 'nchan']);
    // nginx proxies to the replicas where the stack has its gateways; the replicas publish to its live server.
    nginx = await LiveNginx.prepare(() => replicas.map((r) => new URL(r.url).host));
    const env = { KEY_PREFIX: prefix, LIVE_PUBLISH_URL: nginx.publishUrl, LIVE_REFRESH_MS: String(REFRESH_MS) };
    for (let i = 0; i < 3; i++) replicas.push(await startService({ ...env, INSTANCE_ID: `live-${i + 1}` }, { clock: () => now }));
    await nginx.start();
    api = new Client(replicas[0]!.url);
    // p01 (990) ... p12 (880): a board with a known order; p03, p06... are in NA, p01, p04... in EU, p02, p05... in ASIA.
    for (let i = 1; i <= 12; i++) {
      const id = `p${String(i).padStart(2, '0')}`;
      tokens.set(id, await api.register(id, ['NA', 'EU', 'ASIA'][i % 3]!, { initialScore: 1000 - i * 10 }));
    }
    // Every replica sees the three members before the tests count publications.
    await sleep(3 * REFRESH_MS);
  });
  afterEach(() => {
    for (const s of streams.splice(0)) s.close();
  });
  after(async () => {
    for (const r of replicas) await r.stop();
    await nginx?.stop();
  });

  it('when a channel nobody watched is subscribed to, then the replica publishes its current state and answers an X-Accel-Redirect to nginx\'s subscriber location', async () => {
    const channel = 'default/default/live/GLOBAL/3';
    expect(await info(channel), 'nchan before the subscription').to.equal(undefined);
    const r = await subscribe('/live?region=GLOBAL&limit=3');
    expect(r.status).to.equal(200);
    expect(redirectOf(r)).to.equal('/_lb_live/sub/default/default/live/GLOBAL/3');
    expect(r.body).to.equal('');
    // Published before the answer: nchan holds it for the subscriber on its way.
    const held = await info(channel);
    expect(held).to.include({ messages: 1, subscribers: 0 });
    const a = await follow(redirectOf(r));
    const first = await a.event(0);
    expect(first.event).to.equal('top');
    expect(first.id).to.equal(held!.last_message_id).and.to.match(NCHAN_ID);
    const data = dataOf(first);
    expect(data).to.include({ board: 'main', period: null, region: 'GLOBAL', limit: 3 });
    expect(data.at).to.be.a('number');
    expect(data.rows).to.deep.equal((await api.get('/top?region=GLOBAL&limit=3')).body.rows);
    // Through another replica: the channel has its message, nothing more is published.
    const r1 = await subscribe('/live?region=GLOBAL&limit=3', 1);
    expect(redirectOf(r1)).to.equal('/_lb_live/sub/default/default/live/GLOBAL/3');
    const b = await follow(redirectOf(r1));
    // Through nginx's public listener, which sends it to a replica and follows the replica's redirect itself.
    const c = await SseStream.open(`${nginx!.url}/live?region=GLOBAL&limit=3`);
    streams.push(c);
    expect(c.status).to.equal(200);
    expect(c.headers.get('x-served-by')).to.match(/^live-[123]$/);
    for (const s of [b, c]) expect((await s.event(0)).id).to.equal(first.id);
    await until(async () => (await info(channel))?.subscribers === 3, 5000, 'three subscribers');
    await sleep(QUIET_MS);
    for (const s of [a, b, c]) expect(s.events).to.have.length(1);
    expect(await info(channel)).to.include({ messages: 1, subscribers: 3, last_message_id: first.id });
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
    // The HEAD readied no channel: nchan has none.
    expect(await info('default/default/live/NA/4')).to.equal(undefined);
  });

  it('when a client sends an event id, then only nchan\'s id of the channel\'s current message is passed on; junk, stale and crash-prone ids are dropped', async () => {
    const channel = 'default/default/live/EU/2';
    const watcher = await watch('/live?region=EU&limit=2');
    const current = (await watcher.event(0)).id!;
    expect(current).to.match(NCHAN_ID);
    expect((await info(channel))!.last_message_id).to.equal(current);
    const byHeader = redirectOf(await subscribe('/live?region=EU&limit=2', 1, { 'last-event-id': current }));
    expect(byHeader).to.equal(`/_lb_live/sub/default/default/live/EU/2?lid=${current}`);
    expect(redirectOf(await subscribe(`/live?region=EU&limit=2&last_event_id=${encodeURIComponent(current)}`, 2))).to.equal(`/_lb_live/sub/default/default/live/EU/2?lid=${current}`);
    // nchan resumes after that id: the resumed stream's first event is the next change, the one after `current`.
    const resumed = await follow(byHeader);
    const eu = (await api.get('/top?region=EU&limit=1')).body.rows[0];
    const climber = [...tokens.keys()].find((id) => Number(id.slice(1)) % 3 === 1 && id !== eu.user_id)!;
    await setScore(climber, eu.score + 5);
    const next = await resumed.event(0);
    expect(dataOf(next).rows[0].user_id).to.equal(climber);
    expect(next.id).not.to.equal(current);
    expect((await watcher.event(1)).id).to.equal(next.id);
    for (const junk of ['12:0', '1:0', '0:0', '0:0,0', `${current},0`, '1:[0],1', '-1:-1', '99999999999:99999', 'abc', `${current}x`, `0${current}`, '1700000000:0', current]) {
      expect(redirectOf(await subscribe('/live?region=EU&limit=2', 0, { 'last-event-id': junk })), junk).to.equal('/_lb_live/sub/default/default/live/EU/2');
    }
    // nchan reads conditional headers as ids, and serves an EventSource only to who asks for text/event-stream:
    // those requests go through the hop that sends nchan nothing else.
    expect(redirectOf(await subscribe('/live?region=EU&limit=2', 0, { 'if-none-match': '0', 'if-modified-since': 'Thu, 01 Jan 1970 00:00:12 GMT' }))).to.equal('/_lb_live/via/default/default/live/EU/2');
    expect(redirectOf(await new Client(replicas[0]!.url).get('/live?region=EU&limit=2'))).to.equal('/_lb_live/via/default/default/live/EU/2');
    // Through nginx, the hop is a stream of the channel's current message.
    const hop = await SseStream.open(`${nginx!.url}/live?region=EU&limit=2`, { accept: null, headers: { 'if-none-match': '0' } });
    streams.push(hop);
    expect(hop.status).to.equal(200);
    expect((await hop.event(0)).id).to.equal(next.id);
    // nginx restarted: its channels and messages are gone, so the id the client holds is not passed on, and the state is published again.
    for (const s of streams.splice(0)) s.close();
    await nginx!.restart();
    expect(await info(channel), 'nchan after the restart').to.equal(undefined);
    const again = await subscribe('/live?region=EU&limit=2', 1, { 'last-event-id': next.id! });
    expect(redirectOf(again)).to.equal('/_lb_live/sub/default/default/live/EU/2');
    expect(await info(channel)).to.include({ messages: 1 });
    const fresh = await follow(redirectOf(again));
    expect(dataOf(await fresh.event(0)).rows).to.deep.equal((await api.get('/top?region=EU&limit=2')).body.rows);
  });

  it('when writes change a board watched through 3 replicas, then each change is published exactly once, and a change below the watched top not at all', async () => {
    const channel = 'default/default/live/GLOBAL/5';
    const watchers = [await watch('/live?region=GLOBAL&limit=5', 0), await watch('/live?region=GLOBAL&limit=5', 1), await watch('/live?region=GLOBAL&limit=5', 2)];
    for (const s of watchers) await s.event(0);
    await until(async () => (await info(channel))?.subscribers === 3, 5000, 'three subscribers');
    expect(await info(channel)).to.include({ messages: 1, subscribers: 3 });
    const changes = ['p07', 'p08', 'p09', 'p10'];
    for (const [i, user] of changes.entries()) {
      await setScore(user, 5000 + i, new Client(replicas[i % 3]!.url));
      // Each change is awaited before the next: it cannot be coalesced with it.
      for (const s of watchers) await s.until(() => last(s)?.rows[0]?.user_id === user, 5000, `the change by ${user}`);
    }
    // p12 is far below the top 5 (and within the first 100: the change reaches the replicas).
    await setScore('p12', 1);
    await sleep(QUIET_MS);
    const ids = watchers[0]!.events.map((e) => e.id);
    expect(ids, 'events').to.have.length(1 + changes.length);
    expect(new Set(ids).size).to.equal(ids.length);
    expect(new Set(contents(watchers[0]!.events)).size).to.equal(ids.length);
    // Every watcher got those messages, whichever replica it subscribed through.
    for (const s of watchers) expect(s.events.map((e) => e.id)).to.deep.equal(ids);
    expect((await info(channel))!.last_message_id).to.equal(ids.at(-1));
    // One replica publishes the channel; /health counts it there.
    expect(replicas.filter((r) => r.deps.live.publishes(channel))).to.have.length(1);
    const counts = await Promise.all(replicas.map(async (r) => (await new Client(r.url).get('/health')).body.live_channels as { top: number; me: number }));
    expect(counts.reduce((a, c) => a + c.top, 0)).to.equal(replicas.reduce((a, r) => a + r.deps.live.channels().top, 0));
  });

  it('when 500 writes change the top in a burst, then the channel is published at most ~5 times a second, never the same content twice, and last with the final top', async () => {
    const s = await watch('/live?region=GLOBAL&limit=4', 1);
    await s.event(0);
    const base = s.events.length;
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
    await s.until(() => JSON.stringify(last(s)?.rows) === JSON.stringify(final), 5000, 'the final top');
    const burst = s.events.slice(base);
    expect(burst.length).to.be.at.least(1);
    expect(burst.length, `${burst.length} publications`).to.be.at.most(Math.ceil((performance.now() - started) / 200) + 1);
    expect(new Set(contents(s.events)).size).to.equal(s.events.length);
  });

  it('when a channel has no subscriber in nchan (nobody followed the redirect, or the last one left), then it is dropped: no longer computed nor published', async () => {
    const shard = replicas[0]!.deps.router.homeShard('', 'ASIA').id;
    const store = replicas[0]!.deps.stores.get(shard);
    const keys = shardKeys(shard, prefix).live;
    const registered = async (channel: string) => (await store.client.zScore(keys.channels, channel)) !== null;
    // live/ASIA/3: subscribed, never followed. live/ASIA/5: followed, then left. live/ASIA/4: watched throughout.
    expect(redirectOf(await subscribe('/live?region=ASIA&limit=3', 2))).to.equal('/_lb_live/sub/default/default/live/ASIA/3');
    const leaving = await watch('/live?region=ASIA&limit=5', 1);
    await leaving.event(0);
    const kept = await watch('/live?region=ASIA&limit=4', 0);
    await kept.event(0);
    for (const channel of ['default/default/live/ASIA/3', 'default/default/live/ASIA/4', 'default/default/live/ASIA/5']) expect(await registered(channel), channel).to.equal(true);
    leaving.close();
    await until(async () => (await info('default/default/live/ASIA/5'))?.subscribers === 0, 5000, 'the last subscriber gone');
    expect(await info('default/default/live/ASIA/3')).to.include({ messages: 1, subscribers: 0 });
    await until(async () => !(await registered('default/default/live/ASIA/3')) && !(await registered('default/default/live/ASIA/5')), 20 * REFRESH_MS + 5000, 'the registrations dropped');
    expect(await registered('default/default/live/ASIA/4'), 'the watched channel').to.equal(true);
    const held = { three: (await info('default/default/live/ASIA/3'))!.last_message_id, five: (await info('default/default/live/ASIA/5'))!.last_message_id };
    const top = (await api.get('/top?region=ASIA&limit=1')).body.rows[0];
    const asian = [...tokens.keys()].find((id) => Number(id.slice(1)) % 3 === 2 && id !== top.user_id)!;
    await setScore(asian, top.score + 100);
    // The watched channel is published; the dropped ones, which show the same change, are not.
    await kept.until(() => last(kept)?.rows[0]?.user_id === asian, 5000, 'the change on the watched channel');
    await sleep(QUIET_MS);
    expect((await info('default/default/live/ASIA/3'))!.last_message_id).to.equal(held.three);
    expect((await info('default/default/live/ASIA/5'))!.last_message_id).to.equal(held.five);
    expect(replicas.filter((r) => r.deps.live.publishes('default/default/live/ASIA/3') || r.deps.live.publishes('default/default/live/ASIA/5'))).to.deep.equal([]);
    expect(replicas.filter((r) => r.deps.live.publishes('default/default/live/ASIA/4'))).to.have.length(1);
  });

  it('when a player watches their card with a ticket, then it is published at once and again when another player overtakes them', async () => {
    const t = await api.post('/me/live-ticket', undefined, { token: tokens.get('p11')! });
    expect(t.status, JSON.stringify(t.body)).to.equal(200);
    expect(t.body.expires_in).to.equal(30);
    const r = await subscribe(`/me/live?board=main&ticket=${encodeURIComponent(t.body.ticket)}`, 2);
    expect(redirectOf(r)).to.equal('/_lb_live/sub/default/default/card/main/all/p11');
    const s = await follow(redirectOf(r));
    const first = await s.event(0);
    expect(first.event).to.equal('card');
    const rank = await api.get('/rank/p11?region=GLOBAL');
    const regional = await api.get(`/rank/p11?region=${rank.body.region}`);
    expect(dataOf(first)).to.deep.include({
      board: 'main',
      period: null,
      user_id: 'p11',
      name: 'Name p11',
      score: rank.body.score,
      rank: { region: regional.body.rank, global: rank.body.rank },
      percentile: { region: regional.body.percentile, global: rank.body.percentile },
    });
    expect(dataOf(first).around).to.deep.equal((await api.get('/around/p11?region=GLOBAL&range=2')).body.around);
    // p12 overtakes p11.
    await setScore('p12', rank.body.score + 1);
    await s.until(() => last(s)?.rank.global === rank.body.rank + 1, 5000, 'the card after being overtaken');
    expect(s.events.at(-1)!.event).to.equal('card');
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
    const channel = `default/default/top/${board}/2026-12-01/GLOBAL/10`;
    const r = await subscribe(`/boards/${board}/live?region=GLOBAL&limit=10`, 1);
    expect(redirectOf(r)).to.equal(`/_lb_live/sub/${channel}`);
    const s = await follow(redirectOf(r));
    const first = dataOf(await s.event(0));
    expect(first).to.include({ board, period: '2026-12-01', region: 'GLOBAL', limit: 10 });
    expect(first.rows[0]).to.deep.include({ user_id: 'p01', score: 50, metadata: { car: 'red' } });
    expect(s.ended).to.equal(false);
    now = Date.parse('2026-12-02T00:00:00.100Z');
    await s.until(() => s.ended, 5000, 'the stream of the ended period');
    expect(s.events).to.have.length(1);
    expect((await info(channel))?.messages ?? 0, 'messages nchan holds for the ended period').to.equal(0);
    // The next subscription follows the new period.
    const r2 = await subscribe(`/boards/${board}/live?region=GLOBAL&limit=10`, 2);
    expect(redirectOf(r2)).to.equal(`/_lb_live/sub/default/default/top/${board}/2026-12-02/GLOBAL/10`);
    const s2 = await follow(redirectOf(r2));
    expect(dataOf(await s2.event(0))).to.deep.include({ period: '2026-12-02', rows: [] });
  });

  it('when a process holds the service\'s deps without serving (a bench seeding and reading, a script), then it is no publisher: a GLOBAL channel it would be dealt keeps getting the changes made on every shard, past its heartbeats, on every subscriber', async () => {
    // As the live bench makes its own: the platform's shards and key prefix, no server, no nginx of this test
    // (LIVE_PUBLISH_URL of nobody: the bench left the default, a port nothing of its stack listens on).
    const tool = await createDeps(
      loadConfig({ TOPOLOGY: topologyJson(replicas[0]!.topology), JWT_SECRET: TEST_SECRET, KEY_PREFIX: prefix, LIVE_REFRESH_MS: String(REFRESH_MS), LIVE_PUBLISH_URL: 'http://127.0.0.1:1', LOG_LEVEL: 'error', PORT: '0' }),
      { log: createLogger('test-tool', 'error') },
    );
    try {
      // A GLOBAL top that rendezvous hashing would give the tool if it counted among the publishers (limits 3 to 5 are the earlier tests').
      const publishers = [...replicas.map((r) => r.deps.live.member), tool.live.member];
      const limit = Array.from({ length: 94 }, (_, i) => i + 6).find((l) => rendezvous(`default/default/live/GLOBAL/${l}`, publishers) === tool.live.member)!;
      expect(limit, 'a GLOBAL limit dealt to the tool').to.be.a('number');
      const channel = `default/default/live/GLOBAL/${limit}`;
      // Every replica's heartbeat has read the shards' members since the tool's deps were made.
      await sleep(3 * REFRESH_MS);
      const watchers: SseStream[] = [];
      for (let i = 0; i < 6; i++) watchers.push(await watch(`/live?region=GLOBAL&limit=${limit}`, i % 3));
      for (const s of watchers) await s.event(0);
      await until(async () => (await info(channel))?.subscribers === watchers.length, 5000, 'the subscribers');
      // Changes by an NA, an EU and an ASIA player in turn (each on its own shard), over more than 10 heartbeats.
      const players = ['p03', 'p01', 'p02', 'p06', 'p04', 'p05', 'p09', 'p07', 'p08'];
      const started = performance.now();
      for (const [i, user] of players.entries()) {
        const top = (await api.get('/top?region=GLOBAL&limit=1')).body.rows[0];
        await setScore(user, top.score + 10, new Client(replicas[i % 3]!.url));
        for (const s of watchers) await s.until(() => last(s)?.rows[0]?.user_id === user, 5000, `the change by ${user} (change ${i + 1})`);
        await sleep(Math.max(0, (12 * REFRESH_MS * (i + 1)) / players.length - (performance.now() - started)));
      }
      expect(replicas.filter((r) => r.deps.live.publishes(channel))).to.have.length(1);
      expect(tool.live.publishes(channel)).to.equal(false);
      // The shards' publishers are the three replicas.
      for (const shard of replicas[0]!.deps.router.shards) {
        const members = await replicas[0]!.deps.stores.get(shard.id).client.zRange(shardKeys(shard.id, prefix).live.members, 0, -1);
        expect(members.sort(), `the publishers on ${shard.id}`).to.deep.equal(replicas.map((r) => r.deps.live.member).sort());
      }
    } finally {
      await tool.close();
    }
  });

  it('when the replica publishing a channel stops, then another one publishes its changes', async () => {
    const channel = 'default/default/live/NA/2';
    const s = await watch('/live?region=NA&limit=2', 0);
    await s.event(0);
    // Its publisher learns of it at its next heartbeat, unless it took the subscription itself.
    await until(() => replicas.some((r) => r.deps.live.publishes(channel)), 5000, 'a publisher of the channel');
    const owner = replicas.findIndex((r) => r.deps.live.publishes(channel));
    const [stopped] = replicas.splice(owner, 1);
    await stopped!.stop();
    const via = new Client(replicas[0]!.url);
    const top = (await via.get('/top?region=NA&limit=1')).body.rows[0];
    const american = [...tokens.keys()].find((id) => Number(id.slice(1)) % 3 === 0 && id !== top.user_id)!;
    await setScore(american, top.score + 100, via);
    await s.until(() => last(s)?.rows[0]?.user_id === american, 5000, 'the change published by another replica');
    expect(replicas.filter((r) => r.deps.live.publishes(channel))).to.have.length(1);
  });
});
