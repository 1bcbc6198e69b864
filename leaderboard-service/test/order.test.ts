/**
 * Board order, defined once per side: @lb/common ranking.ts (TypeScript) and
 * lua/includes/order.lua (Lua). Both against a brute-force model of every
 * order × tie policy with heavy ties, and against each other on a real Redis.
 */
import { expect } from 'chai';
import { createClient } from 'redis';
import { comparePlaces, mergePlaces, memberOf, rankList, rankPlaces, scoreOf, storedOf, userOfMember, type Place } from '@lb/common/contracts';
import { getInfra, uniqueId } from '@lb/devtools/testing';
import { rng } from '../../test/support/reference-board.js';
import { expandLua } from '../src/redis/scripts.js';

type Order = 'desc' | 'asc';
type Tie = 'shared' | 'earliest';

interface Entry {
  user_id: string;
  score: number;
  reached: number;
}

/** Board order and ranks by their definitions, with no cleverness. */
function model(order: Order, tie: Tie, entries: readonly Entry[]) {
  const better = (a: number, b: number) => (order === 'desc' ? a > b : a < b);
  const sorted = [...entries].sort((a, b) => {
    if (a.score !== b.score) return better(a.score, b.score) ? -1 : 1;
    if (tie === 'earliest' && a.reached !== b.reached) return a.reached - b.reached;
    return a.user_id < b.user_id ? -1 : 1;
  });
  const ranks = sorted.map((e, i) => (tie === 'earliest' ? i + 1 : 1 + sorted.filter((o) => better(o.score, e.score)).length));
  return { sorted, ranks };
}

function randomEntries(seed: number, n: number): Entry[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => ({ user_id: `u${Math.floor(r() * 1000)}-${i}`, score: Math.floor(r() * 9) - 3, reached: 1_700_000_000_000_000 + Math.floor(r() * 50) }));
}

const placeOf = (order: Order, tie: Tie, e: Entry): Place & { user_id: string } => ({ stored: storedOf(order, e.score), member: memberOf(tie, e.user_id, e.reached), user_id: e.user_id });

describe('board order and rank maths (one module per side)', function () {
  this.timeout(60_000);

  for (const order of ['desc', 'asc'] as const) {
    for (const tie of ['shared', 'earliest'] as const) {
      it(`when places of a ${order}/${tie} board are sorted, merged from partitions and ranked, then they equal the model`, () => {
        for (const seed of [1, 2, 3, 4, 5]) {
          const entries = randomEntries(seed, 300);
          const want = model(order, tie, entries);
          const places = entries.map((e) => placeOf(order, tie, e));
          const parts: (typeof places)[] = [[], [], []];
          places.forEach((p, i) => parts[i % 3]!.push(p));
          for (const p of parts) p.sort(comparePlaces);
          const merged = mergePlaces(parts, places.length);
          expect(merged.map((p) => userOfMember(p.member))).to.deep.equal(want.sorted.map((e) => e.user_id));
          expect(rankList(tie, merged)).to.deep.equal(want.ranks);
          // A window anywhere, ranked from its position and the players strictly better than its first row.
          for (let start = 0; start < merged.length; start += 37) {
            const window = merged.slice(start, start + 25);
            const better = merged.filter((p) => Number(p.stored) < Number(window[0]!.stored)).length;
            expect(rankPlaces(tie, window, start, better)).to.deep.equal(want.ranks.slice(start, start + 25));
          }
        }
      });
    }
  }

  it('when a score is stored and read back, then it is the same score on both orders (and 0 is never -0)', () => {
    for (const order of ['desc', 'asc'] as const) {
      for (const score of [0, 1, -1, 42, -7, 2 ** 53 - 1, -(2 ** 53 - 1)]) {
        expect(Object.is(scoreOf(order, storedOf(order, score)), score)).to.equal(true);
      }
      expect(storedOf(order, 0)).to.equal('0');
    }
    expect(storedOf('desc', 5)).to.equal('-5');
    expect(storedOf('asc', 5)).to.equal('5');
  });

  it('when the Lua include and the TypeScript module encode and place the same entries, then they agree', async () => {
    const infra = await getInfra();
    const client = createClient({ url: infra.redis[0]!.url });
    await client.connect();
    try {
      for (const order of ['desc', 'asc'] as const) {
        for (const tie of ['shared', 'earliest'] as const) {
          const z = `${uniqueId('order')}:z`;
          const places = randomEntries(order === 'desc' ? 7 : 8, 120).map((e) => placeOf(order, tie, e));
          await client.zAdd(
            z,
            places.map((p) => ({ score: Number(p.stored), value: p.member })),
          );
          const sorted = [...places].sort(comparePlaces);
          const probes = randomEntries(9, 40).map((e) => placeOf(order, tie, e));
          const script = `${expandLua('includes/order')}
local out = {}
for i = 1, #ARGV, 3 do
  local score = tonumber(ARGV[i])
  out[#out + 1] = storedFor('${order}', score)
  out[#out + 1] = int(scoreOf('${order}', storedFor('${order}', score)))
  out[#out + 1] = positionOf(KEYS[1], ARGV[i + 1], ARGV[i + 2])
  out[#out + 1] = uidOf(ARGV[i + 2])
end
return out`;
          const args = probes.flatMap((p) => [String(scoreOf(order, p.stored)), p.stored, p.member]);
          const got = (await client.eval(script, { keys: [z], arguments: args })) as (string | number)[];
          probes.forEach((p, i) => {
            const [stored, score, position, uid] = got.slice(4 * i, 4 * i + 4);
            expect(stored, 'stored').to.equal(p.stored);
            expect(Number(score), 'score').to.equal(scoreOf(order, p.stored));
            expect(position, `position of ${p.member}`).to.equal(sorted.filter((s) => comparePlaces(s, p) < 0).length);
            expect(uid).to.equal(p.user_id);
          });
          await client.del(z);
        }
      }
    } finally {
      await client.quit();
    }
  });
});
