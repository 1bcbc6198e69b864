/**
 * The board engine directly (its write script and the views' gathers, no
 * routes), for every rule combination: order × operator × tie policy ×
 * reset, plus a row with the rules the catalog gives the board `main`
 * (desc, set, shared, no reset, the operator overridable to set, incr or
 * best per write, bounds 0 … MAX_SCORE). Random submissions by players of
 * every region go through the engine and one reference model; then every
 * view's standings, every player's rank and a sample of around-me windows
 * must equal the model's, in each period written.
 */
import { expect } from 'chai';
import { DEFAULT_PROJECT, GLOBAL, parseReset, periodAt, type Board, type Operator, type SortOrder, type TieBreak } from '@lb/common/contracts';
import { uniqueId } from '@lb/devtools/testing';
import { rng } from '../../test/support/reference-board.js';
import { BoardStore } from '../src/redis/board-store.js';
import { Client, startService, type TestService } from './support/service.js';

interface Rules {
  label: string;
  order: SortOrder;
  operator: Operator;
  tieBreak: TieBreak;
  reset: string;
  /** The catalog's board `main` itself (its rules must be the row's; read through the original routes too). */
  main?: boolean;
  /** Operators a write may name instead of the board's (the board `main` allows all three). */
  overrides: readonly Operator[];
  minScore: number;
  maxScore: number;
}

interface Entry {
  user_id: string;
  region: string;
  score: number;
  reached: number;
}

/** What a board of these rules holds after the same submissions, by the rules' definitions. */
class Model {
  readonly entries = new Map<string, Entry>();
  private seq = 0;
  constructor(private readonly rules: Rules) {}

  /** Applies a submission; false when it was refused (out of bounds) or changed nothing. */
  submit(user: string, region: string, op: Operator, value: number): 'refused' | 'unchanged' | 'changed' {
    const e = this.entries.get(user);
    const better = (a: number, b: number) => (this.rules.order === 'desc' ? a > b : a < b);
    const next = op === 'incr' ? (e?.score ?? 0) + value : value;
    if (next < this.rules.minScore || next > this.rules.maxScore) return 'refused';
    if (op === 'best' && e && !better(next, e.score)) return 'unchanged';
    const reached = e && e.score === next ? e.reached : ++this.seq;
    this.entries.set(user, { user_id: user, region, score: next, reached });
    return 'changed';
  }

  ranked(view: string): { rank: number; user_id: string; score: number }[] {
    const better = (a: number, b: number) => (this.rules.order === 'desc' ? a > b : a < b);
    const rows = [...this.entries.values()].filter((e) => view === GLOBAL || e.region === view);
    rows.sort((a, b) => {
      if (a.score !== b.score) return better(a.score, b.score) ? -1 : 1;
      if (this.rules.tieBreak === 'earliest' && a.reached !== b.reached) return a.reached - b.reached;
      return a.user_id < b.user_id ? -1 : 1;
    });
    return rows.map((e, i) => ({
      rank: this.rules.tieBreak === 'earliest' ? i + 1 : 1 + rows.filter((o) => better(o.score, e.score)).length,
      user_id: e.user_id,
      score: e.score,
    }));
  }
}

const MAX_SCORE = Number.MAX_SAFE_INTEGER;
const NO_BUCKETS = { project: { capacity: 0, windowMs: 1 }, user: { capacity: 0, windowMs: 1 }, region: { capacity: 0, windowMs: 1 } };

const ROWS: Rules[] = [
  { label: "main's rules (desc, shared, no reset, any operator per write, 0 … MAX_SCORE)", order: 'desc', operator: 'set', tieBreak: 'shared', reset: 'none', overrides: ['set', 'incr', 'best'], minScore: 0, maxScore: MAX_SCORE },
  { label: 'the board main itself, as the catalog defines it', main: true, order: 'desc', operator: 'set', tieBreak: 'shared', reset: 'none', overrides: ['set', 'incr', 'best'], minScore: 0, maxScore: MAX_SCORE },
];
for (const order of ['desc', 'asc'] as const) {
  for (const operator of ['set', 'incr', 'best'] as const) {
    for (const tieBreak of ['shared', 'earliest'] as const) {
      for (const reset of ['none', 'daily']) {
        ROWS.push({ label: `rules ${order}/${operator}/${tieBreak}/${reset}`, order, operator, tieBreak, reset, overrides: [], minScore: -20, maxScore: 40 });
      }
    }
  }
}

describe('the board engine against one reference model: order × operator × tie policy × reset, and main\'s rules', function () {
  this.timeout(300_000);
  let svc: TestService;
  let api: Client;
  before(async () => {
    svc = await startService();
    api = new Client(svc.url);
  });
  after(async () => svc?.stop());

  function boardOf(rules: Rules): Board {
    const now = new Date().toISOString();
    return {
      id: uniqueId('conf').toLowerCase().replace(/[^a-z0-9_-]/g, '-').slice(0, 60),
      title: rules.label,
      order: rules.order,
      operator: rules.operator,
      reset: rules.reset,
      resetRule: parseReset(rules.reset),
      tieBreak: rules.tieBreak,
      minScore: rules.minScore,
      maxScore: rules.maxScore,
      maxMetadataBytes: 1024,
      clientWrites: true,
      allowOperatorOverride: rules.overrides.length > 0,
      webhookUrl: null,
      keepPeriods: 2,
      createdAt: now,
      updatedAt: now,
      deletedAt: null,
    };
  }

  for (const [n, rules] of ROWS.entries()) {
    it(`when random submissions hit a board of ${rules.label}, then every view's standings, ranks and windows equal the model`, async () => {
      const board = rules.main ? svc.deps.catalog.main(DEFAULT_PROJECT) : boardOf(rules);
      if (rules.main) {
        expect(board).to.deep.include({ id: 'main', order: rules.order, operator: rules.operator, tieBreak: rules.tieBreak, reset: rules.reset, minScore: rules.minScore, maxScore: rules.maxScore, allowOperatorOverride: true, maxMetadataBytes: 1024 });
      }
      const random = rng(100 + n);
      const current = periodAt(board.resetRule, Date.now()).id;
      // A board with a reset is written in two periods (the current one and an earlier one), which must not mix.
      const periods = rules.reset === 'none' ? [current] : [current, '2026-01-01'];
      const models = new Map(periods.map((p) => [p, new Model(rules)]));
      const regions = ['NA', 'EU', 'ASIA', GLOBAL];
      const players = Array.from({ length: 24 }, (_, i) => ({ id: `${board.id}-p${i}`, region: regions[i % regions.length]! }));
      for (let i = 0; i < 160; i++) {
        const p = players[Math.floor(random() * players.length)]!;
        const period = periods[Math.floor(random() * periods.length)]!;
        const op = rules.overrides.length > 0 ? rules.overrides[Math.floor(random() * rules.overrides.length)]! : rules.operator;
        // Few distinct scores, so ties are many; now and then one out of bounds.
        let value = op === 'incr' ? 1 + Math.floor(random() * 3) : Math.floor(random() * 6);
        if (rules.minScore < 0 && random() < 0.3) value = 0 - value || 0;
        if (random() < 0.03) value = op === 'incr' ? rules.maxScore : rules.maxScore + 1;
        const want = models.get(period)!.submit(p.id, p.region, op, value);
        const store = new BoardStore(svc.deps.stores.get(svc.deps.router.homeShard(p.id, p.region).id), DEFAULT_PROJECT);
        const r = await store.write({
          board,
          period,
          operator: op,
          op,
          value,
          userId: p.id,
          name: `Name ${p.id}`,
          region: p.region,
          regionalView: p.region === GLOBAL ? undefined : p.region,
          metadata: undefined,
          nowMs: Date.now(),
          requestId: `r${i}`,
          backlogLimit: 0,
          projectBacklogLimit: 0,
          buckets: NO_BUCKETS,
        });
        if (want === 'refused') expect(r.kind, `submission ${i}`).to.equal('out_of_range');
        else {
          expect(r.kind, `submission ${i}`).to.equal('ok');
          if (r.kind === 'ok') expect(r.changed, `submission ${i}`).to.equal(want === 'changed');
        }
      }
      for (const period of periods) {
        const model = models.get(period)!;
        for (const view of regions) {
          const want = model.ranked(view);
          const top = await svc.deps.views.top(DEFAULT_PROJECT, board, period, view, 1000, {});
          expect(top.total, `${period} ${view} total`).to.equal(want.length);
          expect(
            top.rows.map((r) => ({ rank: r.rank, user_id: r.user_id, score: r.score })),
            `${period} ${view}`,
          ).to.deep.equal(want);
          if (rules.main) {
            // The original /top and /boards/main/top answer the same standings.
            const legacy = await api.get(`/top?region=${view}&limit=1000`);
            expect(legacy.body).to.deep.equal({ region: view, total: want.length, rows: want.map((w) => ({ ...w, name: `Name ${w.user_id}` })) });
            const viaBoard = await api.get(`/boards/main/top?region=${view}&limit=1000`);
            expect(viaBoard.body.rows.map((r: { rank: number; user_id: string; score: number }) => ({ rank: r.rank, user_id: r.user_id, score: r.score }))).to.deep.equal(want);
          }
          for (const [i, w] of want.entries()) {
            const rank = await svc.deps.views.rank(DEFAULT_PROJECT, board, period, view, w.user_id);
            expect(rank.rank, `${period} ${view} rank of ${w.user_id}`).to.equal(w.rank);
            if (i % 5 === 0) {
              const around = await svc.deps.views.around(DEFAULT_PROJECT, board, period, view, w.user_id, 2);
              const near = [...want.slice(Math.max(0, i - 2), i), ...want.slice(i + 1, i + 3)];
              expect(
                around.around.map((r) => ({ rank: r.rank, user_id: r.user_id, score: r.score })),
                `${period} ${view} around ${w.user_id}`,
              ).to.deep.equal(near);
            }
          }
        }
      }
    });
  }
});
