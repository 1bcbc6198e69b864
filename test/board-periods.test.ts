/**
 * Periods of named boards, with a clock the test controls so that a
 * boundary is crossed without waiting: the new period starts empty with no
 * job run, writes racing the reset land in exactly one period, the close
 * runs once with two closers and after a worker is SIGKILLed inside it,
 * archived periods answer exactly what the live board answered, and the
 * period.closed webhook arrives once, signed, after two failed attempts.
 */
import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { DEFAULT_PROJECT, periodAt, type Topology } from '@lb/common/contracts';
import { BoardsRepo, createLogger, topologyJson } from '@lb/common/platform';
import { getInfra, projectDb, uniqueId } from '@lb/devtools/testing';
import { runAdmin } from '../leaderboard-service/src/admin/cli.js';
import { ApiKeysRepo } from '../leaderboard-service/src/db/api-keys-repo.js';
import { Client, startService, type TestService } from '../leaderboard-service/test/support/service.js';
import { PeriodCloser } from '../worker-service/src/periods/closer.js';
import { PeriodJobs, schedulerIdOf } from '../worker-service/src/periods/jobs.js';
import { eventually, spawnNode, type Child } from './support/processes.js';

const T = (iso: string) => Date.parse(iso);

describe('named board periods', function () {
  this.timeout(120_000);
  let now = T('2026-12-01T23:59:30Z');
  let svc: TestService;
  let api: Client;
  let key: string;
  const players: { id: string; region: string; token: string }[] = [];
  const log = createLogger('test', 'error');

  const closer = (extra: Partial<ConstructorParameters<typeof PeriodCloser>[0]> = {}) =>
    new PeriodCloser({
      topology: svc.topology,
      pools: svc.deps.pools,
      boards: new BoardsRepo(svc.deps.pools, svc.topology.shards[0]!.id),
      keyPrefix: svc.config.keyPrefix,
      log,
      ...extra,
    });

  const makeBoard = async (body: Record<string, unknown>) => {
    const id = uniqueId('per').toLowerCase();
    const r = await api.request('POST', '/admin/boards', { body: { id, ...body }, headers: { 'x-api-key': key } });
    expect(r.status, JSON.stringify(r.body)).to.equal(201);
    return { id, secret: r.body.webhook_secret as string };
  };

  before(async () => {
    svc = await startService({}, { clock: () => now });
    api = new Client(svc.url);
    key = (await new ApiKeysRepo(svc.deps.pools, svc.topology.shards[0]!.id).create('periods')).key;
    for (const region of ['NA', 'EU', 'ASIA', 'GLOBAL']) {
      for (let i = 0; i < 3; i++) {
        const id = uniqueId(`p${region.toLowerCase()}`);
        players.push({ id, region, token: await api.register(id, region) });
      }
    }
  });
  after(async () => svc?.stop());

  /** Every read a client can make of one period of a board. */
  async function snapshot(board: string, period: string) {
    const out: unknown[] = [];
    for (const view of ['GLOBAL', 'NA', 'EU', 'ASIA']) {
      let cursor: string | null = null;
      do {
        const page: { body: { next_cursor: string | null } } = await api.get(`/boards/${board}/top?region=${view}&limit=2&period=${period}${cursor ? `&cursor=${cursor}` : ''}`);
        out.push(page.body);
        cursor = page.body.next_cursor;
      } while (cursor);
      out.push((await api.get(`/boards/${board}/top?region=${view}&limit=3&from_rank=2&period=${period}`)).body);
      for (const p of players) {
        out.push((await api.get(`/boards/${board}/rank/${p.id}?region=${view}&period=${period}`)).body);
        out.push((await api.get(`/boards/${board}/around/${p.id}?region=${view}&range=2&period=${period}`)).body);
      }
      out.push((await api.post(`/boards/${board}/ranks`, { user_ids: players.slice(0, 7).map((p) => p.id), region: view, period })).body);
    }
    return out;
  }

  it('when the clock crosses a daily boundary, then the new period starts empty, the old one is closed once by two closers, and its archive answers exactly as the live board did', async () => {
    now = T('2026-12-01T23:59:30Z');
    const { id } = await makeBoard({ operator: 'best', order: 'asc', tie_break: 'earliest', reset: 'daily' });
    for (const [i, p] of players.entries()) {
      const r = await api.post(`/boards/${id}/scores`, { score: 100 - (i % 4) * 10, metadata: { lap: i } }, { token: p.token });
      expect(r.body.period).to.equal('2026-12-01');
    }
    now = T('2026-12-02T00:00:01Z');
    // No job ran: the new period is simply empty, and a write lands in it.
    expect((await api.get(`/boards/${id}/top?region=GLOBAL`)).body).to.deep.include({ period: '2026-12-02', total: 0 });
    const w = await api.post(`/boards/${id}/scores`, { score: 55 }, { token: players[0]!.token });
    expect(w.body).to.deep.include({ period: '2026-12-02', version: 1 });
    const live = await snapshot(id, '2026-12-01');
    const periods = await api.get(`/boards/${id}/periods`);
    expect(periods.body.periods.map((p: { id: string; status: string; players: number }) => [p.id, p.status, p.players])).to.deep.equal([
      ['2026-12-02', 'open', 1],
      ['2026-12-01', 'closing', players.length],
    ]);

    // Too early (inside the grace): nothing happens.
    expect(await closer().close(DEFAULT_PROJECT, id, '2026-12-01', T('2026-12-02T00:00:01Z'), 5000)).to.equal('not_ended');
    const [a, b] = [closer(), closer()];
    const outcomes = await Promise.all([a.close(DEFAULT_PROJECT, id, '2026-12-01', T('2026-12-02T00:00:10Z'), 5000), b.close(DEFAULT_PROJECT, id, '2026-12-01', T('2026-12-02T00:00:10Z'), 5000)]);
    await Promise.all([a.shutdown(), b.shutdown()]);
    expect(outcomes.sort()).to.deep.equal(['already_closed', 'closed']);
    const control = projectDb(svc.deps.pools, svc.topology.shards[0]!.id);
    const counted = await control.query('SELECT view, count(*)::int AS n FROM period_archive WHERE board = $1 AND period = $2 GROUP BY view ORDER BY view', [id, '2026-12-01']);
    expect(counted.rows).to.deep.equal([
      { view: 'ASIA', n: 3 },
      { view: 'EU', n: 3 },
      { view: 'GLOBAL', n: 12 },
      { view: 'NA', n: 3 },
    ]);
    expect(await snapshot(id, '2026-12-01'), 'archived answers').to.deep.equal(live);
    const after = await api.get(`/boards/${id}/periods`);
    expect(after.body.periods.map((p: { id: string; status: string }) => [p.id, p.status])).to.deep.equal([
      ['2026-12-02', 'open'],
      ['2026-12-01', 'archived'],
    ]);
    // A write whose replica still thinks it is yesterday is refused, not lost.
    now = T('2026-12-01T23:59:59Z');
    const late = await api.post(`/boards/${id}/scores`, { score: 1 }, { token: players[1]!.token });
    expect([late.status, late.body.error]).to.deep.equal([409, 'period_closed']);
    now = T('2026-12-02T00:00:20Z');
    // The closed period's keys now expire (keep_periods = 2 days).
    const shard = svc.deps.stores.get(svc.topology.shards[0]!.id);
    const ttl = await shard.client.pTTL(shard.keys.project(DEFAULT_PROJECT).boardPeriod(id, '2026-12-01').view('GLOBAL'));
    expect(ttl).to.be.within(1, 2 * 86_400_000);
  });

  it('when writes race a reset, then each lands in exactly the period its answer names', async () => {
    now = T('2026-12-02T23:59:59Z');
    const { id } = await makeBoard({ operator: 'incr', reset: 'daily' });
    const sent = players.flatMap((p) => [1, 2, 3].map((n) => ({ p, n })));
    const post = async ({ p, n }: (typeof sent)[number]) => {
      const r = await api.post(`/boards/${id}/scores`, { score: n }, { token: p.token });
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
      return { user: p.id, period: r.body.period as string, n };
    };
    // Half are sent before the clock moves and half after; some of the first
    // half are still on their way when it does.
    const first = sent.slice(0, sent.length / 2).map(post);
    await first[0];
    now = T('2026-12-03T00:00:00Z');
    const answers = await Promise.all([...first, ...sent.slice(sent.length / 2).map(post)]);
    for (const period of ['2026-12-02', '2026-12-03']) {
      const want = new Map<string, number>();
      for (const a of answers.filter((x) => x.period === period)) want.set(a.user, (want.get(a.user) ?? 0) + a.n);
      const top = await api.get(`/boards/${id}/top?region=GLOBAL&limit=100&period=${period}`);
      expect(new Map(top.body.rows.map((r: { user_id: string; score: number }) => [r.user_id, r.score])), period).to.deep.equal(want);
    }
    expect(answers.some((a) => a.period === '2026-12-02') && answers.some((a) => a.period === '2026-12-03')).to.equal(true);
  });

  it('when the period jobs run, then a job scheduler follows the boundaries, and the webhook is delivered once, signed, after two failed attempts', async () => {
    now = T('2026-12-04T12:00:00Z');
    const received: { headers: http.IncomingHttpHeaders; body: string }[] = [];
    let calls = 0;
    const receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        calls++;
        if (calls <= 2) {
          res.writeHead(500).end();
          return;
        }
        received.push({ headers: req.headers, body });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    const { id, secret } = await makeBoard({ operator: 'set', reset: 'daily', webhook_url: url });
    for (const p of players.slice(0, 5)) await api.post(`/boards/${id}/scores`, { score: 7 }, { token: p.token });
    const boards = new BoardsRepo(svc.deps.pools, svc.topology.shards[0]!.id);
    const c = closer();
    let jobs: PeriodJobs | undefined;
    try {
      jobs = new PeriodJobs(
        { topology: svc.topology, pools: svc.deps.pools, boards, closer: c, log },
        { keyPrefix: svc.config.keyPrefix, graceMs: 0, syncMs: 3_600_000, webhookAttempts: 5, webhookBackoffMs: 100, webhookTimeoutMs: 2000, lockMs: 5000, stalledIntervalMs: 5000 },
      );
      const sched = jobs; // the closer hands deliveries to it
      const c2 = closer({ onDelivery: (p, d) => sched.queueDelivery(p, d) });
      jobs.start();
      await jobs.sync(Date.now());
      const schedulers = await jobs.queue.getJobSchedulers();
      expect(schedulers.find((s) => s.key === schedulerIdOf(DEFAULT_PROJECT, id))).to.deep.include({ pattern: '0 0 * * *', tz: 'UTC' });
      expect(await c2.close(DEFAULT_PROJECT, id, '2026-12-04', T('2026-12-05T00:00:01Z'), 0)).to.equal('closed');
      await c2.shutdown();
      await eventually('the webhook delivered', async () => received.length === 1, 30_000, 100);
      const r = received[0]!;
      expect(r.headers['x-leaderboard-signature']).to.equal(`sha256=${createHmac('sha256', secret).update(r.body).digest('hex')}`);
      expect(r.headers['x-leaderboard-event']).to.equal('period.closed');
      const payload = JSON.parse(r.body);
      expect(payload).to.deep.include({ event: 'period.closed', board: id, period: '2026-12-04', players: 5 });
      expect(payload.top).to.have.length(5);
      expect(calls).to.equal(3);
      const d = await projectDb(svc.deps.pools, svc.topology.shards[0]!.id).query('SELECT status, attempts FROM webhook_deliveries WHERE id = $1', [`${id}/2026-12-04`]);
      expect(d.rows[0]).to.deep.equal({ status: 'delivered', attempts: 3 });
      // A second close of the same period changes nothing and sends nothing.
      expect(await c.close(DEFAULT_PROJECT, id, '2026-12-04', T('2026-12-05T00:00:01Z'), 0)).to.equal('already_closed');
    } finally {
      await jobs?.close();
      await c.shutdown();
      await new Promise((r) => receiver.close(r));
    }
  });

  it('when a delivery spends its attempts, then it stays failed, `admin webhook list` shows it, and `admin webhook replay` sends it once more', async () => {
    now = T('2026-12-05T12:00:00Z');
    let healthy = false;
    const received: string[] = [];
    const receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        if (!healthy) return void res.writeHead(503).end();
        received.push(body);
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    const { id } = await makeBoard({ operator: 'best', reset: 'daily', webhook_url: url });
    await api.post(`/boards/${id}/scores`, { score: 3 }, { token: players[0]!.token });
    const control = projectDb(svc.deps.pools, svc.topology.shards[0]!.id);
    const delivery = `${id}/2026-12-05`;
    const status = async () => (await control.query('SELECT status FROM webhook_deliveries WHERE id = $1', [delivery])).rows[0]?.status as string | undefined;
    let jobs: PeriodJobs | undefined;
    const prior = process.env.TOPOLOGY;
    process.env.TOPOLOGY = topologyJson(svc.topology);
    try {
      jobs = new PeriodJobs(
        { topology: svc.topology, pools: svc.deps.pools, boards: new BoardsRepo(svc.deps.pools, svc.topology.shards[0]!.id), closer: closer(), log },
        { keyPrefix: svc.config.keyPrefix, graceMs: 0, syncMs: 3_600_000, webhookAttempts: 2, webhookBackoffMs: 50, webhookTimeoutMs: 1000, lockMs: 5000, stalledIntervalMs: 5000 },
      );
      const sched = jobs;
      const c = closer({ onDelivery: (p, d) => sched.queueDelivery(p, d) });
      jobs.start();
      expect(await c.close(DEFAULT_PROJECT, id, '2026-12-05', T('2026-12-06T00:00:01Z'), 0)).to.equal('closed');
      await c.shutdown();
      await eventually('the delivery failed for good', async () => (await status()) === 'failed', 30_000, 100);
      const out: string[] = [];
      expect(await runAdmin(['webhook', 'list', '--json'], (s) => out.push(s), () => undefined)).to.equal(0);
      expect((JSON.parse(out.pop()!) as { id: string }[]).find((d) => d.id === delivery)).to.deep.include({ status: 'failed', attempts: 2, last_error: 'receiver answered 503', url });
      expect(await runAdmin(['webhook', 'replay', 'no-such/delivery'], () => undefined, () => undefined)).to.equal(1);
      expect(await runAdmin(['webhook', 'replay'], () => undefined, () => undefined)).to.equal(2);

      healthy = true;
      expect(await runAdmin(['webhook', 'replay', delivery], (s) => out.push(s), () => undefined)).to.equal(0);
      expect(await status()).to.equal('pending');
      // The periodic sync picks up pending deliveries older than 10 s (younger ones are the closer's own).
      await control.query(`UPDATE webhook_deliveries SET created_at = now() - interval '1 minute' WHERE id = $1`, [delivery]);
      await jobs.sync(Date.now());
      await eventually('the replay delivered', async () => (await status()) === 'delivered', 30_000, 100);
      expect(received).to.have.length(1);
      expect(JSON.parse(received[0]!)).to.deep.include({ board: id, period: '2026-12-05', players: 1 });
      // Only failed deliveries are replayed: a delivered one is not sent twice.
      expect(await runAdmin(['webhook', 'replay', delivery], () => undefined, () => undefined)).to.equal(1);
    } finally {
      if (prior === undefined) delete process.env.TOPOLOGY;
      else process.env.TOPOLOGY = prior;
      await jobs?.close();
      await new Promise((r) => receiver.close(r));
    }
  });

  it('when a worker is SIGKILLed inside a close, then nothing of it remains and the next close archives the period once', async () => {
    // Yesterday by the real clock, which the worker processes go by: the period is due to close now.
    now = Date.now() - 86_400_000;
    const { id } = await makeBoard({ operator: 'set', reset: 'daily' });
    const period = periodAt('daily', now).id;
    for (const p of players.slice(0, 4)) expect((await api.post(`/boards/${id}/scores`, { score: 3 }, { token: p.token })).body.period).to.equal(period);
    now = Date.now();
    const infra = await getInfra();
    const topology: Topology = svc.topology;
    const control = projectDb(svc.deps.pools, topology.shards[0]!.id);
    // A worker whose sync queues the close of yesterday and dies before its COMMIT.
    let child: Child | undefined = await spawnNode(
      'worker-service/src/index.ts',
      infra.env({
        TOPOLOGY: topologyJson(topology), KEY_PREFIX: svc.config.keyPrefix, LOG_LEVEL: 'warn', WORKER_TEST_FAULT: 'crash-before-close-commit',
        PERIOD_GRACE_MS: '0', WORKER_LOCK_MS: '1000', WORKER_STALLED_INTERVAL_MS: '1000',
      }),
    );
    const boards = new BoardsRepo(svc.deps.pools, topology.shards[0]!.id);
    const c = closer();
    const jobs = new PeriodJobs(
      { topology, pools: svc.deps.pools, boards, closer: c, log },
      { keyPrefix: svc.config.keyPrefix, graceMs: 0, syncMs: 3_600_000, webhookAttempts: 1, webhookBackoffMs: 100, webhookTimeoutMs: 1000, lockMs: 1000, stalledIntervalMs: 1000 },
    );
    try {
      expect(await child.exited).to.equal('SIGKILL');
      child = undefined;
      // Whatever close killed it, it left nothing behind.
      const left = await control.query('SELECT count(*)::int AS n FROM period_closes c WHERE NOT EXISTS (SELECT 1 FROM period_archive a WHERE a.board = c.board AND a.period = c.period) AND c.players > 0');
      expect(left.rows[0].n).to.equal(0);
      // The jobs left behind are taken over (stalled) and the close completes, once.
      jobs.start();
      await eventually('the period archived', async () => (await control.query('SELECT 1 FROM period_closes WHERE board = $1 AND period = $2', [id, period])).rowCount === 1, 30_000, 200);
      expect((await control.query("SELECT count(*)::int AS n FROM period_archive WHERE board = $1 AND period = $2 AND view = 'GLOBAL'", [id, period])).rows[0].n).to.equal(4);
      expect(await c.close(DEFAULT_PROJECT, id, period, Date.now(), 0)).to.equal('already_closed');
      expect((await api.get(`/boards/${id}/top?region=GLOBAL&period=${period}`)).body.total).to.equal(4);
    } finally {
      await child?.stop('SIGKILL');
      await jobs.close();
      await c.shutdown();
    }
  });
  it("when two projects each have a daily board of the same id, then the jobs schedule each under its own id, and one project's close archives, answers and delivers only its own standings", async () => {
    now = T('2026-12-10T12:00:00Z');
    const admin = (method: string, path: string, body?: unknown, k = key) => api.request(method, path, { ...(body !== undefined && { body }), headers: { 'x-api-key': k } });
    const ok = async (r: Promise<{ status: number; body: any }>) => {
      const x = await r;
      expect(x.status, JSON.stringify(x.body)).to.be.oneOf([200, 201, 204]);
      return x.body;
    };
    const tenant = uniqueId('pt').toLowerCase().replace(/[^a-z0-9]/g, '');
    const project = { tenant, project: 'live' };
    await ok(admin('POST', '/admin/tenants', { id: tenant, name: tenant, plan: 'pro' }));
    await ok(admin('POST', `/admin/projects?tenant=${tenant}`, { id: 'live', name: 'Live' }));
    const client = (await ok(admin('POST', `/admin/keys?tenant=${tenant}`, { kind: 'client', name: 'c', project: 'live' }))).key as string;
    const received: { board: string; players: number; top: { user_id: string }[] }[] = [];
    const receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        received.push(JSON.parse(body));
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    const { id } = await makeBoard({ operator: 'set', reset: 'daily' });
    await ok(admin('POST', `/admin/boards?tenant=${tenant}&project=live`, { id, title: 'Same id', operator: 'set', reset: 'daily', webhook_url: url }));
    // The project's own players (registered through its client key), and the default project's.
    const mine: string[] = [];
    for (const region of ['NA', 'EU', 'ASIA']) {
      const user = uniqueId(`pp${region.toLowerCase()}`);
      const reg = await ok(api.request('POST', '/auth/register', { body: { user_id: user, name: user, region, password: 'correct horse' }, headers: { 'x-api-key': client } }));
      await ok(api.request('POST', `/boards/${id}/scores`, { body: { score: 10 + mine.length }, token: reg.token as string }));
      mine.push(user);
    }
    for (const p of players.slice(0, 4)) await ok(api.post(`/boards/${id}/scores`, { score: 1 }, { token: p.token }));

    const c = closer();
    let jobs: PeriodJobs | undefined;
    try {
      jobs = new PeriodJobs(
        { topology: svc.topology, pools: svc.deps.pools, boards: new BoardsRepo(svc.deps.pools, svc.topology.shards[0]!.id), closer: c, log },
        { keyPrefix: svc.config.keyPrefix, graceMs: 0, syncMs: 3_600_000, webhookAttempts: 3, webhookBackoffMs: 50, webhookTimeoutMs: 2000, lockMs: 5000, stalledIntervalMs: 5000 },
      );
      const sched = jobs;
      const c2 = closer({ onDelivery: (p, d) => sched.queueDelivery(p, d) });
      jobs.start();
      await jobs.sync(Date.now());
      const keys = (await jobs.queue.getJobSchedulers()).map((x) => x.key);
      expect(keys).to.include.members([schedulerIdOf(DEFAULT_PROJECT, id), schedulerIdOf(project, id)]);
      expect(schedulerIdOf(project, id)).to.not.equal(schedulerIdOf(DEFAULT_PROJECT, id));

      expect(await c2.close(project, id, '2026-12-10', T('2026-12-11T00:00:01Z'), 0)).to.equal('closed');
      await c2.shutdown();
      await eventually('the project board\'s webhook delivered', async () => received.length === 1, 30_000, 100);
      expect(received[0]).to.deep.include({ board: id, players: 3 });
      // The operator sees the delivery under its project, not under the default one.
      const prior = process.env.TOPOLOGY;
      process.env.TOPOLOGY = topologyJson(svc.topology);
      try {
        const listed: string[] = [];
        expect(await runAdmin(['webhook', 'list', '--tenant', tenant, '--project', 'live', '--json'], (x) => listed.push(x), () => undefined)).to.equal(0);
        expect((JSON.parse(listed.pop()!) as { id: string; status: string }[]).find((d) => d.id === `${id}/2026-12-10`)).to.deep.include({ status: 'delivered' });
        expect(await runAdmin(['webhook', 'list', '--json'], (x) => listed.push(x), () => undefined)).to.equal(0);
        expect((JSON.parse(listed.pop()!) as { id: string }[]).some((d) => d.id === `${id}/2026-12-10`), 'not the default project\'s').to.equal(false);
      } finally {
        process.env.TOPOLOGY = prior;
      }
      expect(received[0]!.top.map((r) => r.user_id).sort()).to.deep.equal([...mine].sort());
      // Its archive answers its own rows through its keys; the default project's board of that id is ended, not closed.
      now = T('2026-12-11T00:00:05Z');
      const top = await api.request('GET', `/boards/${id}/top?region=GLOBAL&limit=10&period=2026-12-10`, { headers: { 'x-api-key': client } });
      expect(top.body.rows.map((r: { user_id: string }) => r.user_id).sort()).to.deep.equal([...mine].sort());
      const theirs = await api.request('GET', `/boards/${id}/periods`, { headers: { 'x-api-key': client } });
      expect(theirs.body.periods.find((p: { id: string }) => p.id === '2026-12-10')).to.deep.include({ status: 'archived', players: 3 });
      const defaults = await api.get(`/boards/${id}/periods`);
      expect(defaults.body.periods.find((p: { id: string }) => p.id === '2026-12-10')).to.deep.include({ status: 'closing', players: 4 });
      // The project's period is closed to writes; the default project's is not.
      now = T('2026-12-10T23:59:59Z');
      const late = await api.request('POST', `/boards/${id}/scores`, { body: { score: 99 }, token: (await ok(api.request('POST', '/auth/login', { body: { user_id: mine[0], password: 'correct horse' }, headers: { 'x-api-key': client } }))).token as string });
      expect([late.status, late.body.error]).to.deep.equal([409, 'period_closed']);
      expect((await api.post(`/boards/${id}/scores`, { score: 2 }, { token: players[0]!.token })).status).to.equal(200);

      // A deleted project's boards leave the schedule.
      await ok(admin('DELETE', `/admin/projects/live?tenant=${tenant}`));
      await jobs.sync(Date.now());
      const after = (await jobs.queue.getJobSchedulers()).map((x) => x.key);
      expect(after).to.include(schedulerIdOf(DEFAULT_PROJECT, id));
      expect(after).to.not.include(schedulerIdOf(project, id));
    } finally {
      await jobs?.close();
      await c.shutdown();
      await new Promise((r) => receiver.close(r));
    }
  });
});
