/**
 * Named boards against a reference model: every combination of order ×
 * operator × tie policy, regional and GLOBAL views across three shards,
 * random submissions, and every read (all pages by cursor, from_rank, rank,
 * around, ranks of a list) compared with the model's answer. Then the rules
 * a board enforces on writes.
 */
import { DEFAULT_PROJECT, eventIdOf } from '@lb/common/contracts';
import { expect } from 'chai';
import { rng } from '../../test/support/reference-board.js';
import { uniqueId } from '@lb/devtools/testing';
import { ApiKeysRepo } from '../src/db/api-keys-repo.js';
import { Client, startService, type TestService } from './support/service.js';

type Order = 'desc' | 'asc';
type Op = 'set' | 'incr' | 'best';
type Tie = 'shared' | 'earliest';

interface Entry {
  user_id: string;
  region: string;
  score: number;
  reached: number;
  metadata: unknown;
}

/** The model: what a board of these rules holds after the same submissions. */
class Model {
  readonly entries = new Map<string, Entry>();
  private seq = 0;
  constructor(
    readonly order: Order,
    readonly op: Op,
    readonly tie: Tie,
  ) {}

  /** Applies a submission; returns whether the entry changed. */
  submit(user: string, region: string, value: number, metadata?: unknown): boolean {
    const e = this.entries.get(user);
    let next: number;
    if (this.op === 'incr') next = (e?.score ?? 0) + value;
    else if (this.op === 'best' && e && !(this.order === 'desc' ? value > e.score : value < e.score)) return false;
    else next = value;
    const reached = e && e.score === next ? e.reached : ++this.seq;
    this.entries.set(user, { user_id: user, region, score: next, reached, metadata: metadata ?? e?.metadata ?? null });
    return true;
  }

  sorted(view: string): Entry[] {
    const rows = [...this.entries.values()].filter((e) => view === 'GLOBAL' || e.region === view);
    return rows.sort((a, b) => {
      if (a.score !== b.score) return this.order === 'desc' ? b.score - a.score : a.score - b.score;
      if (this.tie === 'earliest' && a.reached !== b.reached) return a.reached - b.reached;
      return a.user_id < b.user_id ? -1 : 1;
    });
  }

  ranked(view: string): { rank: number; user_id: string; score: number; metadata: unknown }[] {
    const rows = this.sorted(view);
    return rows.map((e, i) => ({
      rank: this.tie === 'earliest' ? i + 1 : 1 + rows.filter((o) => (this.order === 'desc' ? o.score > e.score : o.score < e.score)).length,
      user_id: e.user_id,
      score: e.score,
      metadata: e.metadata,
    }));
  }
}

describe('named boards: every rule combination against a reference model, across a period boundary', function () {
  this.timeout(180_000);
  let svc: TestService;
  let api: Client;
  let key: string;
  let now = Date.parse('2026-12-01T12:00:00Z');
  const players: { id: string; region: string; token: string }[] = [];

  before(async () => {
    svc = await startService({}, { clock: () => now });
    api = new Client(svc.url);
    key = (await new ApiKeysRepo(svc.deps.pools, svc.deps.router.shards[0]!.id).create('model')).key;
    for (const region of ['NA', 'EU', 'ASIA', 'GLOBAL']) {
      for (let i = 0; i < 4; i++) {
        const id = uniqueId(`m${region.toLowerCase()}`);
        players.push({ id, region, token: await api.register(id, region) });
      }
    }
  });
  after(async () => svc?.stop());

  const strip = (r: { rank: number; user_id: string; score: number; metadata: unknown }) => ({ rank: r.rank, user_id: r.user_id, score: r.score, metadata: r.metadata });

  /** Every read of one period of a board, on every view, against the model. */
  async function verify(board: string, period: string, model: Model, order: Order, tie: Tie) {
    const q = `&period=${period}`;
    for (const view of ['GLOBAL', 'NA', 'EU', 'ASIA']) {
      const want = model.ranked(view);
      // Every page by cursor.
      const got: unknown[] = [];
      let cursor: string | null = null;
      let total = 0;
      for (let pages = 0; pages < 20; pages++) {
        const page: { body: { rows: unknown[]; next_cursor: string | null; total: number } } = await api.get(`/boards/${board}/top?region=${view}&limit=3${q}${cursor ? `&cursor=${cursor}` : ''}`);
        got.push(...(page.body.rows as Parameters<typeof strip>[0][]).map(strip));
        total = page.body.total;
        cursor = page.body.next_cursor;
        if (!cursor) break;
      }
      expect(got, `${period} ${view}: all pages`).to.deep.equal(want.map(strip));
      expect(total).to.equal(want.length);
      const first = await api.get(`/boards/${board}/top?region=${view}&limit=10${q}`);
      expect(first.body.rows.map(strip), `${period} ${view}: first page`).to.deep.equal(want.slice(0, 10).map(strip));
      for (const from of [1, 2, 4, 7]) {
        const page = await api.get(`/boards/${board}/top?region=${view}&limit=4&from_rank=${from}${q}`);
        expect(page.body.rows.map(strip), `${period} ${view}: from_rank ${from}`).to.deep.equal(want.slice(from - 1, from + 3).map(strip));
      }
      for (const [i, e] of want.entries()) {
        const rank = await api.get(`/boards/${board}/rank/${e.user_id}?region=${view}${q}`);
        expect(rank.body, `${period} ${view}: rank of ${e.user_id}`).to.deep.include({ rank: e.rank, score: e.score, total: want.length, board, period });
        if (i % 3 === 0) {
          const around = await api.get(`/boards/${board}/around/${e.user_id}?region=${view}&range=2${q}`);
          const idx = want.findIndex((x) => x.user_id === e.user_id);
          expect(around.body.self ? strip(around.body.self) : around.body, `${period} ${view}: around self`).to.deep.equal(strip(e));
          expect(around.body.around.map(strip), `${period} ${view}: around ${e.user_id}`).to.deep.equal([...want.slice(Math.max(0, idx - 2), idx), ...want.slice(idx + 1, idx + 3)].map(strip));
        }
      }
      const listed = [...players.slice(0, 6).map((p) => p.id), 'nobody-here'];
      const ranks = await api.post(`/boards/${board}/ranks`, { user_ids: listed, region: view, period });
      expect(ranks.status, JSON.stringify(ranks.body)).to.equal(200);
      const inList = want.filter((w) => listed.includes(w.user_id));
      expect(ranks.body.rows.map((r: { user_id: string; rank: number; score: number }) => [r.user_id, r.rank, r.score]), `${period} ${view}: ranks`).to.deep.equal(inList.map((w) => [w.user_id, w.rank, w.score]));
      const listRanks = inList.map((w, i) => (tie === 'shared' ? 1 + inList.filter((o) => (order === 'desc' ? o.score > w.score : o.score < w.score)).length : i + 1));
      expect(ranks.body.rows.map((r: { list_rank: number }) => r.list_rank)).to.deep.equal(listRanks);
      expect(ranks.body.missing).to.include('nobody-here');
    }
  }

  let seed = 7;
  let day = 0;
  for (const order of ['desc', 'asc'] as const) {
    for (const op of ['set', 'incr', 'best'] as const) {
      for (const tie of ['shared', 'earliest'] as const) {
        const comboSeed = seed++;
        it(`when random submissions hit a daily ${order}/${op}/${tie} board across a reset, then top (every page), from_rank, rank, around and ranks equal the model on every view of both periods`, async () => {
          // Each combination gets two days of its own.
          const dayStart = Date.parse('2026-12-01T00:00:00Z') + 2 * day++ * 86_400_000;
          now = dayStart + 12 * 3_600_000;
          const board = uniqueId(`${order}-${op}-${tie}`).toLowerCase();
          const made = await api.request('POST', '/admin/boards', { body: { id: board, order, operator: op, tie_break: tie, min_score: -1000, reset: 'daily' }, headers: { 'x-api-key': key } });
          expect(made.status, JSON.stringify(made.body)).to.equal(201);
          const models = [new Model(order, op, tie), new Model(order, op, tie)];
          const periods: string[] = [];
          const rand = rng(comboSeed);
          for (let i = 0; i < 80; i++) {
            // The clock crosses midnight halfway: the second day starts empty.
            if (i === 40) now = dayStart + 86_400_000 + 60_000;
            const model = models[i < 40 ? 0 : 1]!;
            const p = players[Math.floor(rand() * players.length)]!;
            // Few distinct values, so that ties are common.
            const value = op === 'incr' ? Math.floor(rand() * 5) - 1 : Math.floor(rand() * 6) * 10;
            const metadata = rand() < 0.3 ? { run: i } : undefined;
            const r = await api.post(`/boards/${board}/scores`, { score: value, ...(metadata && { metadata }) }, { token: p.token });
            expect(r.status, JSON.stringify(r.body)).to.equal(200);
            periods[i < 40 ? 0 : 1] = r.body.period;
            const changed = model.submit(p.id, p.region, value, metadata);
            expect(r.body.changed, `submission ${i}`).to.equal(op === 'best' ? changed : true);
            expect(r.body.score).to.equal(model.entries.get(p.id)!.score);
            expect(r.body.rank.global, `global rank after submission ${i}`).to.equal(model.ranked('GLOBAL').find((x) => x.user_id === p.id)!.rank);
            if (p.region !== 'GLOBAL') expect(r.body.rank.region).to.equal(model.ranked(p.region).find((x) => x.user_id === p.id)!.rank);
          }
          expect(periods).to.deep.equal([new Date(dayStart).toISOString().slice(0, 10), new Date(dayStart + 86_400_000).toISOString().slice(0, 10)]);
          await verify(board, periods[0]!, models[0]!, order, tie);
          await verify(board, periods[1]!, models[1]!, order, tie);
        });
      }
    }
  }
});

describe('named boards: the rules a board enforces on writes', function () {
  this.timeout(60_000);
  let svc: TestService;
  let api: Client;
  let key: string;
  let alice: { id: string; token: string };
  let bob: { id: string; token: string };

  const board = async (body: Record<string, unknown>) => {
    const id = uniqueId('rules').toLowerCase();
    const r = await api.request('POST', '/admin/boards', { body: { id, ...body }, headers: { 'x-api-key': key } });
    expect(r.status, JSON.stringify(r.body)).to.equal(201);
    return id;
  };

  before(async () => {
    svc = await startService({ USER_RATE_LIMIT_COUNT: '1000000' });
    api = new Client(svc.url);
    key = (await new ApiKeysRepo(svc.deps.pools, svc.deps.router.shards[0]!.id).create('rules')).key;
    alice = { id: uniqueId('alice'), token: '' };
    alice.token = await api.register(alice.id, 'EU');
    bob = { id: uniqueId('bob'), token: '' };
    bob.token = await api.register(bob.id, 'NA');
  });
  after(async () => svc?.stop());

  it('when a best submission does not improve, then 200 with changed false, no new version and no event', async () => {
    const id = await board({ operator: 'best', order: 'asc' });
    const first = await api.post(`/boards/${id}/scores`, { score: 90 }, { token: alice.token });
    expect(first.body).to.deep.include({ ok: true, board: id, period: 'all', user_id: alice.id, region: 'EU', score: 90, changed: true, version: 1 });
    const store = svc.deps.stores.get('eu');
    const outbox = await store.client.hLen(store.keys.outbox);
    const worse = await api.post(`/boards/${id}/scores`, { score: 95 }, { token: alice.token });
    expect(worse.body).to.deep.include({ score: 90, changed: false, version: 1 });
    expect(await store.client.hLen(store.keys.outbox)).to.equal(outbox);
    const better = await api.post(`/boards/${id}/scores`, { score: 80 }, { token: alice.token });
    expect(better.body).to.deep.include({ score: 80, changed: true, version: 2 });
    expect(await store.client.hExists(store.keys.outbox, eventIdOf({ ...DEFAULT_PROJECT, user_id: alice.id, version: 2, board: id, period: 'all' }))).to.equal(1);
  });

  it('when metadata is sent, then it is stored with the entry and returned in rows; too large is 413 and changes nothing', async () => {
    const id = await board({ operator: 'set', max_metadata_bytes: 64 });
    const ok = await api.post(`/boards/${id}/scores`, { score: 5, metadata: { car: 'red', lap: 3 } }, { token: alice.token });
    expect(ok.status).to.equal(200);
    const top = await api.get(`/boards/${id}/top?region=GLOBAL`);
    expect(top.body.rows[0]).to.deep.equal({ rank: 1, user_id: alice.id, name: `Name ${alice.id}`, score: 5, metadata: { car: 'red', lap: 3 } });
    const kept = await api.post(`/boards/${id}/scores`, { score: 6 }, { token: alice.token });
    expect(kept.status).to.equal(200);
    expect((await api.get(`/boards/${id}/rank/${alice.id}`)).body.metadata).to.deep.equal({ car: 'red', lap: 3 });
    const big = await api.post(`/boards/${id}/scores`, { score: 7, metadata: { pad: 'x'.repeat(100) } }, { token: alice.token });
    expect(big.status).to.equal(413);
    expect(big.body).to.include({ error: 'metadata_too_large', max_metadata_bytes: 64 });
    for (const bad of [[1], 'text', null, 3]) {
      const r = await api.post(`/boards/${id}/scores`, { score: 7, metadata: bad }, { token: alice.token });
      expect([r.status, r.body.field], JSON.stringify(bad)).to.deep.equal([400, 'metadata']);
    }
    expect((await api.get(`/boards/${id}/rank/${alice.id}`)).body.score).to.equal(6);
  });

  it('when a submission leaves the board bounds, then 400 score_out_of_range and nothing changes', async () => {
    const id = await board({ operator: 'incr', min_score: -10, max_score: 10 });
    expect((await api.post(`/boards/${id}/scores`, { score: 8 }, { token: alice.token })).body.score).to.equal(8);
    const over = await api.post(`/boards/${id}/scores`, { score: 3 }, { token: alice.token });
    expect(over.status).to.equal(400);
    expect(over.body).to.include({ error: 'score_out_of_range', score: 8, min_score: -10, max_score: 10 });
    expect((await api.post(`/boards/${id}/scores`, { score: -18 }, { token: alice.token })).body.score).to.equal(-10);
    expect((await api.get(`/boards/${id}/rank/${alice.id}`)).body).to.deep.include({ score: -10 });
  });

  it('when a submission names another operator, then only a board that allows overrides takes it', async () => {
    const strict = await board({ operator: 'best' });
    const r = await api.post(`/boards/${strict}/scores`, { score: 1, op: 'set' }, { token: alice.token });
    expect([r.status, r.body.field]).to.deep.equal([400, 'op']);
    const loose = await board({ operator: 'best', allow_operator_override: true });
    await api.post(`/boards/${loose}/scores`, { score: 50 }, { token: alice.token });
    const down = await api.post(`/boards/${loose}/scores`, { score: 10, op: 'set' }, { token: alice.token });
    expect(down.body).to.deep.include({ score: 10, changed: true });
    const bump = await api.post(`/boards/${loose}/scores`, { score: 5, op: 'incr' }, { token: alice.token });
    expect(bump.body.score).to.equal(15);
    expect((await api.post(`/boards/${loose}/scores`, { score: 1, op: 'max' }, { token: alice.token })).body.field).to.equal('op');
  });

  it('when a board takes server scores only, then a player token is 403 and an API key writes for any existing player', async () => {
    const id = await board({ operator: 'set', client_writes: false });
    const mine = await api.post(`/boards/${id}/scores`, { score: 1 }, { token: alice.token });
    expect(mine.status).to.equal(403);
    expect(mine.body.error).to.equal('client_writes_disabled');
    const server = await api.request('POST', `/boards/${id}/scores`, { body: { user_id: bob.id, score: 77 }, headers: { 'x-api-key': key } });
    expect(server.status, JSON.stringify(server.body)).to.equal(200);
    expect(server.body).to.deep.include({ user_id: bob.id, region: 'NA', score: 77, rank: { region: 1, global: 1 } });
    const ghost = await api.request('POST', `/boards/${id}/scores`, { body: { user_id: uniqueId('ghost'), score: 1 }, headers: { 'x-api-key': key } });
    expect([ghost.status, ghost.body.error]).to.deep.equal([404, 'user_not_found']);
    const noUser = await api.request('POST', `/boards/${id}/scores`, { body: { score: 1 }, headers: { 'x-api-key': key } });
    expect([noUser.status, noUser.body.field]).to.deep.equal([400, 'user_id']);
    const badKey = await api.request('POST', `/boards/${id}/scores`, { body: { user_id: bob.id, score: 1 }, headers: { 'x-api-key': 'lbk_00000000_' + 'A'.repeat(32) } });
    expect([badKey.status, badKey.body.error]).to.deep.equal([401, 'invalid_api_key']);
  });

  it("when a player names someone else, on any board, then 403 and the other's score is untouched", async () => {
    const id = await board({ operator: 'set' });
    await api.post(`/boards/${id}/scores`, { score: 3 }, { token: bob.token });
    const r = await api.post(`/boards/${id}/scores`, { user_id: bob.id, score: 99 }, { token: alice.token });
    expect([r.status, r.body.error]).to.deep.equal([403, 'forbidden']);
    expect((await api.get(`/boards/${id}/rank/${bob.id}`)).body.score).to.equal(3);
  });

  it('when an Idempotency-Key repeats on a board, then the first answer comes back and the write is applied once; on another board the key is another request', async () => {
    const id = await board({ operator: 'incr' });
    const other = await board({ operator: 'incr' });
    const headers = { 'idempotency-key': 'run-7' };
    const a = await api.post(`/boards/${id}/scores`, { score: 4 }, { token: alice.token, headers });
    const b = await api.post(`/boards/${id}/scores`, { score: 4 }, { token: alice.token, headers });
    expect(b.body).to.deep.equal(a.body);
    expect((await api.post(`/boards/${id}/scores`, { score: 5 }, { token: alice.token, headers })).body.error).to.equal('idempotency_key_reuse');
    expect((await api.post(`/boards/${other}/scores`, { score: 4 }, { token: alice.token, headers })).body.version).to.equal(1);
    expect((await api.get(`/boards/${id}/rank/${alice.id}`)).body.score).to.equal(4);
  });

  it('when the board main is used through the board endpoints, then it is a board like any other (every operator, metadata, cursors), in the boards\' shapes', async () => {
    const carol = uniqueId('carol');
    const token = await api.register(carol, 'ASIA', { initialScore: 40 });
    const set = await api.post('/boards/main/scores', { score: 45 }, { token });
    expect(set.body).to.deep.include({ ok: true, board: 'main', period: 'all', user_id: carol, score: 45, changed: true, version: 2 });
    const inc = await api.post('/boards/main/scores', { score: 5, op: 'incr' }, { token });
    expect(inc.body.score).to.equal(50);
    const legacy = await api.get(`/rank/${carol}?region=ASIA`);
    const viaBoard = await api.get(`/boards/main/rank/${carol}?region=ASIA`);
    expect(viaBoard.body).to.deep.include({ board: 'main', period: 'all', region: 'ASIA', score: 50, rank: legacy.body.rank, total: legacy.body.total, metadata: null });
    const top = await api.get('/boards/main/top?region=ASIA&limit=5');
    expect(top.body.rows.map((r: { user_id: string; rank: number; score: number }) => [r.user_id, r.rank, r.score])).to.deep.equal(
      (await api.get('/top?region=ASIA&limit=5')).body.rows.map((r: { user_id: string; rank: number; score: number }) => [r.user_id, r.rank, r.score]),
    );
    expect((await api.post('/boards/main/ranks', { user_ids: [carol, 'nobody-x'] })).body).to.deep.include({ missing: ['nobody-x'] });
    expect((await api.get('/boards/main/periods')).body.periods[0]).to.deep.include({ id: 'all', status: 'open' });
    // main's definition: any operator per write, metadata up to 1,024 bytes, cursors and from_rank.
    expect((await api.post('/boards/main/scores', { score: 1, op: 'best' }, { token })).body).to.deep.include({ score: 50, changed: false });
    expect((await api.post('/boards/main/scores', { score: 51, op: 'best', metadata: { skin: 'gold' } }, { token })).body).to.deep.include({ score: 51, changed: true });
    expect((await api.get(`/boards/main/rank/${carol}`)).body.metadata).to.deep.equal({ skin: 'gold' });
    expect((await api.get(`/rank/${carol}`)).body).not.to.have.property('metadata');
    expect((await api.post('/boards/main/scores', { score: 1, metadata: { big: 'x'.repeat(1100) } }, { token })).body.error).to.equal('metadata_too_large');
    const page1 = await api.get('/boards/main/top?region=GLOBAL&limit=1');
    expect(page1.body.next_cursor, JSON.stringify(page1.body)).to.be.a('string');
    const page2 = await api.get(`/boards/main/top?region=GLOBAL&limit=1&cursor=${page1.body.next_cursor}`);
    expect(page2.body.rows[0]).to.deep.equal((await api.get('/boards/main/top?region=GLOBAL&from_rank=2&limit=1')).body.rows[0]);
    await api.post('/boards/main/scores', { score: 50 }, { token });
    // An admin can make main server-only: the original endpoints refuse players too.
    expect((await api.request('PATCH', '/admin/boards/main', { body: { client_writes: false }, headers: { 'x-api-key': key } })).status).to.equal(200);
    try {
      expect((await api.post('/score/add', { delta: 1 }, { token })).body.error).to.equal('client_writes_disabled');
      const server = await api.request('POST', '/boards/main/scores', { body: { user_id: carol, score: 60 }, headers: { 'x-api-key': key } });
      expect(server.body.score).to.equal(60);
    } finally {
      await api.request('PATCH', '/admin/boards/main', { body: { client_writes: true }, headers: { 'x-api-key': key } });
    }
  });

  it('when the board, period, cursor, region or body is wrong, then a 4xx with a clear code, never a 5xx', async () => {
    const id = await board({ operator: 'set', reset: 'daily' });
    await api.post(`/boards/${id}/scores`, { score: 1 }, { token: alice.token });
    const cases: [string, string, unknown, number, string][] = [
      ['GET', `/boards/${uniqueId('none').toLowerCase()}/top`, undefined, 404, 'board_not_found'],
      ['GET', `/boards/${id}/top?period=2026-13-01`, undefined, 404, 'period_not_found'],
      ['GET', `/boards/${id}/top?period=all`, undefined, 404, 'period_not_found'],
      ['GET', `/boards/${id}/top?cursor=nope`, undefined, 400, 'invalid_query'],
      ['GET', `/boards/${id}/top?cursor=x&from_rank=2`, undefined, 400, 'invalid_query'],
      ['GET', `/boards/${id}/top?from_rank=0`, undefined, 400, 'invalid_query'],
      ['GET', `/boards/${id}/top?from_rank=20000`, undefined, 400, 'invalid_query'],
      ['GET', `/boards/${id}/top?limit=0`, undefined, 400, 'invalid_query'],
      ['GET', `/boards/${id}/top?region=MARS`, undefined, 400, 'unknown_region'],
      ['GET', `/boards/${id}/rank/${bob.id}`, undefined, 404, 'user_not_found'],
      ['GET', `/boards/${id}/around/-x`, undefined, 400, 'invalid_payload'],
      ['POST', `/boards/${id}/ranks`, { user_ids: [] }, 400, 'invalid_payload'],
      ['POST', `/boards/${id}/ranks`, { user_ids: Array.from({ length: 101 }, (_, i) => `u${i}`) }, 400, 'invalid_payload'],
      ['POST', `/boards/${id}/ranks`, { user_ids: ['ok', 5] }, 400, 'invalid_payload'],
      ['POST', `/boards/${id}/ranks`, { user_ids: ['ok'], period: 'x' }, 404, 'period_not_found'],
      ['POST', `/boards/${id}/scores`, { score: 1.5 }, 400, 'invalid_payload'],
      ['POST', `/boards/${id}/scores`, { score: '1' }, 400, 'invalid_payload'],
      ['POST', `/boards/${id}/scores`, {}, 400, 'invalid_payload'],
      ['POST', `/boards/${id}/scores`, { score: 1, extra: true }, 400, 'invalid_payload'],
    ];
    for (const [method, path, body, status, code] of cases) {
      const r = await api.request(method, path, { ...(body !== undefined && { body }), token: alice.token });
      expect([r.status, r.body.error], `${method} ${path} ${JSON.stringify(body)}`).to.deep.equal([status, code]);
    }
    const noToken = await api.post(`/boards/${id}/scores`, { score: 1 });
    expect([noToken.status, noToken.body.error]).to.deep.equal([401, 'missing_token']);
  });
});
