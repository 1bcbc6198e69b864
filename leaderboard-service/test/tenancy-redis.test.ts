/**
 * Two projects on the same shards, the same player ids and board ids in
 * each: every key a project owns carries it (@lb/common keys.ts), so
 * writes, top/rank/around, the exact GLOBAL gather, idempotency records,
 * per-player buckets, the top-page cache and the live channels of one
 * project never show or touch the other's. A project with no data answers
 * like a name that does not exist.
 */
import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppError, DEFAULT_PROJECT, GLOBAL, NO_PROJECT_LIMITS, type ProjectRef, type ScoreEvent } from '@lb/common/contracts';
import { uniqueId } from '@lb/devtools/testing';
import { dataOf, type SseStream } from '../../test/support/sse.js';
import { skipUnlessInstalled } from '../../test/support/test-stack.js';
import type { BoardSubmission } from '../src/boards/scores.js';
import { LiveNginx } from './support/live-nginx.js';
import { startService, type TestService } from './support/service.js';

const A: ProjectRef = { tenant: 'studio-a', project: 'live' };
const B: ProjectRef = { tenant: 'studio-b', project: 'live' };
/** A project nothing was written to. */
const C: ProjectRef = { tenant: 'studio-c', project: 'none' };

/** The error a read ends in, or undefined when it answers. */
async function errorOf(p: Promise<unknown>): Promise<AppError | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    if (e instanceof AppError) return e;
    throw e;
  }
}

describe('Redis tenancy: two projects on the same shards', function () {
  this.timeout(60_000);
  let svc: TestService;
  /** Player ids of this run, the same in both projects, one per region (so on every shard). */
  const players = ['NA', 'EU', 'ASIA', 'GLOBAL'].map((region) => ({ id: uniqueId('same'), region }));
  const submit = (project: ProjectRef, userId: string, region: string, value: number, extra: Partial<BoardSubmission> = {}) =>
    svc.deps.writer.submit({ project, limits: NO_PROJECT_LIMITS, board: svc.deps.catalog.main(project), player: { userId, name: `${project.tenant} ${userId}`, region }, byPlayer: false, op: 'set', value, requestId: 'r', ...extra });
  const main = () => svc.deps.catalog.main(DEFAULT_PROJECT);

  before(async () => {
    // Three writes per player per window: enough for these tests, few enough to see a bucket run out.
    svc = await startService({ USER_RATE_LIMIT_COUNT: '3', USER_RATE_LIMIT_WINDOW_MS: '600000' });
    for (const [i, p] of players.entries()) {
      await submit(A, p.id, p.region, 100 + i);
      await submit(B, p.id, p.region, 900 - i);
    }
  });
  after(async () => svc?.stop());

  it('when the same player id writes in two projects, then each project reads its own score, rank and neighbours, on every view and the gathered GLOBAL one', async () => {
    for (const [i, p] of players.entries()) {
      const views = p.region === GLOBAL ? [GLOBAL] : [GLOBAL, p.region];
      for (const view of views) {
        const a = await svc.deps.views.rank(A, main(), 'all', view, p.id);
        const b = await svc.deps.views.rank(B, main(), 'all', view, p.id);
        expect(a, `A ${view}`).to.deep.include({ score: 100 + i, name: `studio-a ${p.id}` });
        expect(b, `B ${view}`).to.deep.include({ score: 900 - i, name: `studio-b ${p.id}` });
      }
    }
    const ids = players.map((p) => p.id);
    const topA = await svc.deps.views.top(A, main(), 'all', GLOBAL, 100, {});
    const topB = await svc.deps.views.top(B, main(), 'all', GLOBAL, 100, {});
    expect(topA.total).to.equal(players.length);
    expect(topA.rows.map((r) => [r.user_id, r.score])).to.deep.equal([...ids].reverse().map((id, j) => [id, 103 - j]));
    expect(topB.rows.map((r) => [r.user_id, r.score])).to.deep.equal(ids.map((id, j) => [id, 900 - j]));
    expect((await svc.deps.views.rank(A, main(), 'all', GLOBAL, players[0]!.id)).rank).to.equal(4);
    expect((await svc.deps.views.rank(B, main(), 'all', GLOBAL, players[0]!.id)).rank).to.equal(1);
    const around = await svc.deps.views.around(B, main(), 'all', GLOBAL, players[1]!.id, 1);
    expect(around.around.map((r) => r.score)).to.deep.equal([900, 898]);
    const friends = await svc.deps.views.ranks(A, main(), 'all', GLOBAL, ids);
    expect(friends.rows.map((r) => r.score).sort()).to.deep.equal([100, 101, 102, 103]);
  });

  it('when a project has no such player or no data at all, then it answers exactly as for a name that does not exist', async () => {
    const unknown = uniqueId('nobody');
    const inC = await errorOf(svc.deps.views.rank(C, main(), 'all', GLOBAL, players[0]!.id));
    const nowhere = await errorOf(svc.deps.views.rank(A, main(), 'all', GLOBAL, unknown));
    expect(inC?.code).to.equal('user_not_found');
    expect(nowhere?.code).to.equal('user_not_found');
    expect({ ...inC!.details, user_id: 'x' }).to.deep.equal({ ...nowhere!.details, user_id: 'x' });
    expect(await svc.deps.views.top(C, main(), 'all', GLOBAL, 10, {})).to.deep.include({ total: 0, rows: [] });
  });

  it("when each write's event is read from the outbox, then it names its project and the two ids differ", async () => {
    const p = players[1]!;
    const store = svc.deps.stores.get(svc.deps.router.homeShard(p.id, p.region).id);
    const events = Object.values(await store.client.hGetAll(store.keys.outbox)).map((j) => JSON.parse(j) as ScoreEvent).filter((e) => e.user_id === p.id);
    expect(events.map((e) => [e.tenant, e.project, e.score]).sort()).to.deep.equal([['studio-a', 'live', 101], ['studio-b', 'live', 899]]);
    const ids = Object.keys(await store.client.hGetAll(store.keys.outbox)).filter((id) => id.endsWith(`/${p.id}#1`));
    expect(ids.sort()).to.deep.equal([`studio-a/live/main/all/${p.id}#1`, `studio-b/live/main/all/${p.id}#1`]);
  });

  it('when the same Idempotency-Key is used by the same player id in two projects, then each is its own write, and each retry replays its own', async () => {
    const id = uniqueId('idem');
    const a = await submit(A, id, 'EU', 5, { idempotencyKey: 'k1' });
    const b = await submit(B, id, 'EU', 7, { idempotencyKey: 'k1' });
    expect([a.score, b.score]).to.deep.equal([5, 7]);
    expect((await submit(B, id, 'EU', 7, { idempotencyKey: 'k1' })).score).to.equal(7);
    expect((await submit(A, id, 'EU', 5, { idempotencyKey: 'k1' })).score).to.equal(5);
    expect((await svc.deps.views.rank(A, main(), 'all', 'EU', id)).score).to.equal(5);
  });

  it("when a player id uses up its bucket in one project, then the same id in another project still writes", async () => {
    const id = uniqueId('bucket');
    for (let i = 0; i < 3; i++) await submit(A, id, 'NA', i);
    expect((await errorOf(submit(A, id, 'NA', 9)))?.code).to.equal('rate_limited');
    expect((await submit(B, id, 'NA', 9)).score).to.equal(9);
  });

  it("when top pages of both projects are cached and one project's top changes, then each page keeps only its own rows and the other's stays as it was", async () => {
    const before = { a: await svc.deps.views.top(A, main(), 'all', 'EU', 10, {}), b: await svc.deps.views.top(B, main(), 'all', 'EU', 10, {}) };
    expect(before.a.rows.map((r) => r.name).every((n) => n.startsWith('studio-a'))).to.equal(true);
    expect(before.b.rows.map((r) => r.name).every((n) => n.startsWith('studio-b'))).to.equal(true);
    const id = uniqueId('top');
    await submit(B, id, 'EU', 5000);
    await sleep(50);
    const after = { a: await svc.deps.views.top(A, main(), 'all', 'EU', 10, {}), b: await svc.deps.views.top(B, main(), 'all', 'EU', 10, {}) };
    expect(after.a).to.deep.equal(before.a);
    expect(after.b.rows[0]).to.deep.include({ user_id: id, score: 5000 });
  });

  describe('live channels through nginx and nchan', () => {
    let live: TestService | undefined;
    let nginx: LiveNginx | undefined;
    const streams: SseStream[] = [];
    before(async function () {
      skipUnlessInstalled(this, ['nginx', 'nchan']);
      nginx = await LiveNginx.prepare(() => (live ? [new URL(live.url).host] : []));
      live = await startService({ KEY_PREFIX: svc.config.keyPrefix, LIVE_PUBLISH_URL: nginx.publishUrl, LIVE_REFRESH_MS: '200' });
      await nginx.start();
    });
    after(async () => {
      for (const s of streams) s.close();
      await live?.stop();
      await nginx?.stop();
    });

    it("when both projects' tops of the same board and view are watched, then each stream carries only its project's rows, before and after a write to the other", async () => {
      const follow = async (project: ProjectRef) => {
        const sub = await live!.deps.live.open({ project, kind: 'live', view: 'EU', limit: 10 }, undefined);
        expect(sub.channel.startsWith(`${project.tenant}/${project.project}/`), sub.channel).to.equal(true);
        const s = await nginx!.follow(`/_lb_live/sub/${sub.channel}`);
        streams.push(s);
        expect(s.status).to.equal(200);
        return s;
      };
      const names = (s: SseStream) => (dataOf(s.events.at(-1)!).rows as { name: string; user_id: string }[]);
      const sa = await follow(A);
      const sb = await follow(B);
      await sa.until(() => sa.events.length > 0, 5000, 'A first message');
      await sb.until(() => sb.events.length > 0, 5000, 'B first message');
      const id = uniqueId('livew');
      await submit(A, id, 'EU', 7000);
      await sa.until(() => names(sa).some((r) => r.user_id === id), 5000, "A's write on A's stream");
      await sleep(500);
      for (const e of sb.events) expect((dataOf(e).rows as { name: string }[]).every((r) => r.name.startsWith('studio-b')), 'B stream').to.equal(true);
      for (const e of sa.events) expect((dataOf(e).rows as { name: string }[]).every((r) => r.name.startsWith('studio-a')), 'A stream').to.equal(true);
      expect(names(sb).some((r) => r.user_id === id)).to.equal(false);
    });

    it("when the default project's top is watched, then its channel is the default project's and carries none of A's or B's rows", async () => {
      const sub = await live!.deps.live.open({ project: DEFAULT_PROJECT, kind: 'live', view: 'EU', limit: 10 }, undefined);
      expect(sub.channel).to.equal('default/default/live/EU/10');
      const s = await nginx!.follow(`/_lb_live/sub/${sub.channel}`);
      streams.push(s);
      await s.until(() => s.events.length > 0, 5000, 'first message');
      expect((dataOf(s.events.at(-1)!).rows as { name: string }[]).filter((r) => r.name.startsWith('studio-'))).to.deep.equal([]);
    });
  });
});
