import { expect } from 'chai';
import { ReferenceBoards, rng } from '../../test/support/reference-board.js';
import { Client, startService, type TestService } from './support/service.js';
import { DEFAULT_PROJECT } from '@lb/common/contracts';

/**
 * 1,200 players over three shards (and GLOBAL-only players hashed onto them),
 * scores from a small range so ties abound, random update/add operations;
 * then every top, rank and around answer, regional and GLOBAL, must equal
 * the reference model's.
 */
describe('exactness against a reference model', function () {
  this.timeout(300_000);
  const PLAYERS = 1200;
  const OPS = 2400;
  const REGIONS = ['NA', 'EU', 'ASIA', 'GLOBAL'];
  const BOARDS = ['GLOBAL', 'NA', 'EU', 'ASIA'];
  let svc: TestService;
  let api: Client;
  const ref = new ReferenceBoards();
  const random = rng(20261123);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;

  /** Runs tasks with bounded concurrency. */
  async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<void>) {
    let i = 0;
    await Promise.all(Array.from({ length: n }, async () => {
      while (i < items.length) await fn(items[i++]!);
    }));
  }

  before(async () => {
    svc = await startService();
    api = new Client(svc.url);
    const tokens = new Map<string, string>();
    const ids = Array.from({ length: PLAYERS }, (_, i) => `x${svc.config.keyPrefix}-${i.toString(36)}`);
    await pool(ids, 16, async (id) => {
      const region = pick(REGIONS);
      const initial = Math.floor(random() * 20);
      tokens.set(id, await api.register(id, region, { initialScore: initial }));
      ref.set({ user_id: id, name: `Name ${id}`, region, score: initial });
    });
    // Random writes; each player's writes are sequential so the model knows the order.
    const byPlayer = new Map<string, { op: 'update' | 'add'; v: number }[]>();
    for (let k = 0; k < OPS; k++) {
      const id = pick(ids);
      const op = random() < 0.5 ? 'update' : 'add';
      const v = op === 'update' ? Math.floor(random() * 20) : pick([-3, -2, -1, 1, 2, 3]);
      (byPlayer.get(id) ?? byPlayer.set(id, []).get(id)!).push({ op, v });
    }
    await pool([...byPlayer.entries()], 16, async ([id, ops]) => {
      for (const { op, v } of ops) {
        const p = ref.players.get(id)!;
        const r = await api.post(`/score/${op}`, op === 'update' ? { score: v } : { delta: v }, { token: tokens.get(id)! });
        const next = op === 'update' ? v : p.score + v;
        if (next < 0) {
          expect(r.status).to.equal(400);
          continue;
        }
        expect(r.status, JSON.stringify(r.body)).to.equal(200);
        p.score = next;
      }
    });
  });
  after(async () => svc?.stop());

  it('when top is read with any limit, then it equals the model on every board', async () => {
    for (const board of BOARDS) {
      for (const limit of [1, 3, 10, 57, 100, 1000]) {
        const r = await api.get(`/top?region=${board}&limit=${limit}`);
        expect(r.body, `${board} ${limit}`).to.deep.equal(ref.top(board, limit));
      }
    }
  });

  it('when every player is ranked on GLOBAL and on the home board, then all answers equal the model', async () => {
    const checks: [string, string][] = [];
    for (const p of ref.players.values()) {
      checks.push(['GLOBAL', p.user_id]);
      if (p.region !== 'GLOBAL') checks.push([p.region, p.user_id]);
    }
    await pool(checks, 8, async ([board, id]) => {
      const r = await api.get(`/rank/${id}?region=${board}`);
      expect(r.body, `${board} ${id}`).to.deep.equal(ref.rank(board, id));
    });
  });

  it('when around is read for many players with random ranges, then it equals the model', async () => {
    const players = [...ref.players.values()];
    const checks: [string, string, number][] = [];
    for (let k = 0; k < 600; k++) {
      const p = pick(players);
      const board = random() < 0.6 || p.region === 'GLOBAL' ? 'GLOBAL' : p.region;
      checks.push([board, p.user_id, pick([1, 2, 5, 10, 37, 100])]);
    }
    // The first and last players of each board, where windows are cut short.
    for (const board of BOARDS) {
      const all = ref.top(board, 100_000).rows;
      for (const row of [...all.slice(0, 3), ...all.slice(-3)]) checks.push([board, row.user_id, 10]);
    }
    await pool(checks, 8, async ([board, id, range]) => {
      const r = await api.get(`/around/${id}?region=${board}&range=${range}`);
      expect(r.body, `${board} ${id} ${range}`).to.deep.equal(ref.around(board, id, range));
    });
  });

  it('when players are on every shard, then the GLOBAL board really spans three shards', async () => {
    for (const store of svc.deps.stores.all()) {
      expect(await store.client.zCard(store.keys.project(DEFAULT_PROJECT).boardPeriod('main', 'all').view('GLOBAL'))).to.be.greaterThan(PLAYERS / 5);
    }
  });
});
