/**
 * The write script against its contract: its event passes the worker's own
 * event check, its answers are decoded by name, and its token buckets take
 * nothing from a refused write, under concurrency.
 */
import { expect } from 'chai';
import { checkScoreEvent, DEFAULT_PROJECT, eventIdOf, NO_PROJECT_LIMITS, readScoreJob, type ScoreEvent } from '@lb/common/contracts';
import { signToken } from '@lb/common/platform';
import { uniqueId } from '@lb/devtools/testing';
import { ContractError, decodeAnswer } from '../src/redis/contract.js';
import { BoardStore } from '../src/redis/board-store.js';
import { expandLua } from '../src/redis/scripts.js';
import { mainEntry } from '../../test/support/main-entry.js';
import { Client, startService, type TestService } from './support/service.js';

describe('the write script and its contract', function () {
  this.timeout(60_000);

  describe('events', () => {
    let svc: TestService;
    before(async () => {
      svc = await startService();
    });
    after(async () => svc?.stop());

    it("when the script writes an event, then it passes the worker's event check and carries exactly the write", async () => {
      const cases = [
        { region: 'EU', name: 'Plain', op: 'register' as const, operator: 'insert' as const, value: 7 },
        { region: 'NA', name: 'Quote " and \\ backslash', op: 'update' as const, operator: 'set' as const, value: 2 ** 53 - 1 },
        { region: 'ASIA', name: 'Zoé 👨‍👩‍👧 名前', op: 'add' as const, operator: 'incr' as const, value: 1 },
        { region: 'GLOBAL', name: '</script>', op: 'create' as const, operator: 'insert' as const, value: 0 },
        { region: 'EU', name: 'Board op', op: 'best' as const, operator: 'best' as const, value: 3 },
      ];
      for (const c of cases) {
        const userId = uniqueId('ev');
        const legacyOp = c.op === 'best' ? undefined : c.op;
        const r = await svc.deps.writer.submit({ project: DEFAULT_PROJECT, limits: NO_PROJECT_LIMITS, board: svc.deps.catalog.main(DEFAULT_PROJECT), player: { userId, name: c.name, region: c.region }, byPlayer: false, op: c.operator, legacyOp, value: c.value, requestId: 'req-1' });
        const store = svc.deps.stores.get(svc.deps.router.homeShard(userId, c.region).id);
        const id = eventIdOf({ tenant: 'default', project: 'default', user_id: userId, version: r.version, board: 'main', period: 'all' });
        const json = await store.client.hGet(store.keys.outbox, id);
        expect(json, `${c.op} outbox entry ${id}`).to.be.a('string');
        const event = JSON.parse(json!) as ScoreEvent;
        expect(checkScoreEvent(event), c.name).to.equal(undefined);
        expect(readScoreJob({ events: [event] }).problems).to.deep.equal([]);
        expect(event).to.deep.include({ tenant: 'default', project: 'default', user_id: userId, name: c.name, region: c.region, op: c.op, score: r.score, version: 1, delta: r.score, request_id: 'req-1', board: 'main', period: 'all' });
        expect(event.ts).to.be.within(Date.now() - 60_000, Date.now());
        expect(event, 'tracing is off: no trace context').not.to.have.property('traceparent');
      }
    });

    it('when a write is given a traceparent, then its event carries it and passes the check; a malformed one would not', async () => {
      const userId = uniqueId('ev-trace');
      const store = new BoardStore(svc.deps.stores.get(svc.deps.router.homeShard(userId, 'EU').id), DEFAULT_PROJECT);
      const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
      const noBucket = { capacity: 0, windowMs: 1 };
      const write = { board: svc.deps.catalog.main(DEFAULT_PROJECT), period: 'all', operator: 'insert', op: 'register', value: 1, userId, name: 'Tracy', region: 'EU', regionalView: 'EU', metadata: undefined, nowMs: Date.now(), requestId: 'req-t', backlogLimit: 0, projectBacklogLimit: 0, buckets: { project: noBucket, user: noBucket, region: noBucket } } as const;
      const traced = await store.write({ ...write, traceparent });
      expect(traced.kind).to.equal('ok');
      const event = JSON.parse(traced.kind === 'ok' ? traced.event!.json : '{}') as ScoreEvent;
      expect(event).to.deep.include({ user_id: userId, request_id: 'req-t', traceparent });
      expect(checkScoreEvent(event)).to.equal(undefined);
      expect(checkScoreEvent({ ...event, traceparent: '00-xyz-01' })).to.equal('traceparent is malformed');
      const untraced = await store.write({ ...write, operator: 'set', op: 'update', value: 2, traceparent: '' });
      expect(JSON.parse(untraced.kind === 'ok' ? untraced.event!.json : '{}')).not.to.have.property('traceparent');
    });
  });

  describe('answers', () => {
    it('when a script answers, then its fields are read by name, and an answer outside the contract is refused', () => {
      const a = decodeAnswer('write', ['queue_full', 'backlog', 12]);
      expect(a).to.deep.equal({ script: 'write', status: 'queue_full', fields: { backlog: 12 } });
      expect(() => decodeAnswer('write', ['gone', 'x', 1])).to.throw(ContractError, /unknown status/);
      expect(() => decodeAnswer('page', [3, 'a'])).to.throw(ContractError);
      expect(() => decodeAnswer('find', ['ok', 'total'])).to.throw(ContractError);
    });

    it('when scripts include shared pieces, then each piece is written once and expanded in place', () => {
      const write = expandLua('write');
      expect(write).not.to.match(/^--- @include/m);
      expect(write.match(/local function stored\(/g)).to.have.length(1);
      expect(write).to.include('local function bucketTake(');
      expect(expandLua('find').match(/local function stored\(/g)).to.have.length(1);
    });
  });

  describe('token buckets inside the script', () => {
    let svc: TestService;
    let api: Client;
    before(async () => {
      // Five writes per player and eight per region, refilled over ten minutes: nothing refills during the test.
      svc = await startService({ USER_RATE_LIMIT_COUNT: '5', USER_RATE_LIMIT_WINDOW_MS: '600000', REGION_RATE_LIMIT_COUNT: '8', REGION_RATE_LIMIT_WINDOW_MS: '600000' });
      api = new Client(svc.url);
    });
    after(async () => svc?.stop());

    it('when many writes race against a small bucket, then exactly the bucket is accepted and every refused write left no trace', async () => {
      const user = uniqueId('bucket');
      const token = await api.register(user, 'NA');
      const store = svc.deps.stores.get('na');
      const outboxBefore = await store.client.hLen(store.keys.outbox);
      // Out-of-range writes mixed in are refused before any token is taken.
      const rs = await Promise.all(
        Array.from({ length: 40 }, (_, i) => api.post('/score/add', { delta: i % 4 === 0 ? -1000 : 1 }, { token })),
      );
      const by = (code: string) => rs.filter((r) => r.body.error === code).length;
      expect(rs.filter((r) => r.status === 200)).to.have.length(5);
      expect(by('score_out_of_range')).to.equal(10);
      expect(by('rate_limited')).to.equal(25);
      for (const r of rs.filter((x) => x.body.error === 'rate_limited')) expect(r.headers.get('retry-after')).to.equal(String(r.body.retry_after));
      expect(await mainEntry(store.client, store.keys, user)).to.deep.include({ score: 5, version: 6 });
      expect((await store.client.hLen(store.keys.outbox)) - outboxBefore).to.equal(5);
      for (let v = 2; v <= 6; v++) expect(Number(await store.client.hExists(store.keys.outbox, eventIdOf({ ...DEFAULT_PROJECT, user_id: user, version: v, board: 'main', period: 'all' })))).to.equal(1);
      expect(Number(await store.client.hExists(store.keys.outbox, eventIdOf({ ...DEFAULT_PROJECT, user_id: user, version: 7, board: 'main', period: 'all' })))).to.equal(0);
    });

    it('when players of one region race against its bucket, then exactly the region bucket is accepted across them', async () => {
      const players = await Promise.all(Array.from({ length: 5 }, async () => {
        const id = uniqueId('rb');
        return { id, token: await api.register(id, 'ASIA') };
      }));
      const rs = await Promise.all(players.flatMap((p) => Array.from({ length: 4 }, () => api.post('/score/add', { delta: 1 }, { token: p.token }))));
      expect(rs.filter((r) => r.status === 200)).to.have.length(8);
      expect(rs.filter((r) => r.body.error === 'region_rate_limited')).to.have.length(12);
      const store = svc.deps.stores.get('asia');
      let applied = 0;
      for (const p of players) applied += (await mainEntry(store.client, store.keys, p.id)).version! - 1;
      expect(applied).to.equal(8);
      // Another region has its own bucket.
      const eu = signToken({ userId: uniqueId('eu'), name: 'E', region: 'EU' }, svc.config.token);
      expect((await api.post('/score/add', { delta: 1 }, { token: eu })).status).to.equal(200);
    });
  });
});
