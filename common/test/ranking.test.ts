import { expect } from 'chai';
import { compareBoard, mergeSorted, mergeSortedTail, percentile, rankPrefix, rankWindow, type NamedEntry } from '../src/contracts/ranking.js';
import { ReferenceBoards, rng } from '../../test/support/reference-board.js';

/** Splits random players over `shards` partitions, each in board order. */
function randomBoard(seed: number, n: number, maxScore: number, shards: number) {
  const r = rng(seed);
  const ref = new ReferenceBoards();
  const parts: NamedEntry[][] = Array.from({ length: shards }, () => []);
  for (let i = 0; i < n; i++) {
    const p = { user_id: `u${Math.floor(r() * n * 10)}_${i}`, name: `n${i}`, region: 'GLOBAL', score: Math.floor(r() * maxScore) };
    ref.set(p);
    parts[Math.floor(r() * shards)]!.push(p);
  }
  for (const p of parts) p.sort(compareBoard);
  return { ref, parts, r };
}

describe('ranking maths', () => {
  it('when entries tie on score, then user_id ascending breaks the tie', () => {
    const rows = [{ user_id: 'b', score: 5 }, { user_id: 'a', score: 5 }, { user_id: 'c', score: 9 }].sort(compareBoard);
    expect(rows.map((r) => r.user_id)).to.deep.equal(['c', 'a', 'b']);
  });

  it('when ranks are computed over a prefix with ties, then they are competition ranks 1, 2, 2, 4', () => {
    const ranked = rankPrefix([
      { user_id: 'a', name: 'A', score: 10 },
      { user_id: 'b', name: 'B', score: 7 },
      { user_id: 'c', name: 'C', score: 7 },
      { user_id: 'd', name: 'D', score: 3 },
    ]);
    expect(ranked.map((r) => r.rank)).to.deep.equal([1, 2, 2, 4]);
  });

  it('when the board is empty, then the percentile is 0', () => {
    expect(percentile(0, 0)).to.equal(0);
    expect(percentile(1, 3)).to.equal(33.33);
  });

  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    it(`when random partitions are merged (seed ${seed}), then top N equals the reference model`, () => {
      const { ref, parts, r } = randomBoard(seed, 400, 12, 3);
      for (const limit of [1, 5, 37, 400, 1000]) {
        const got = rankPrefix(mergeSorted(parts, limit));
        expect(got).to.deep.equal(ref.top('GLOBAL', limit).rows);
      }
      // A window anywhere on the board, ranked from its first position and
      // the count above its first score, matches the reference too.
      const list = ref.top('GLOBAL', 10_000).rows;
      for (let k = 0; k < 30; k++) {
        const start = Math.floor(r() * list.length);
        const len = 1 + Math.floor(r() * 25);
        const window = list.slice(start, start + len);
        const higher = list.filter((x) => x.score > window[0]!.score).length;
        expect(rankWindow(window, start, higher)).to.deep.equal(window);
      }
    });
  }

  it('when the tail of merged partitions is taken, then it is the last N in board order', () => {
    const { parts } = randomBoard(42, 100, 5, 3);
    const all = mergeSorted(parts, 1000);
    expect(mergeSortedTail(parts, 7)).to.deep.equal(all.slice(-7));
    expect(mergeSortedTail(parts, 1000)).to.deep.equal(all);
  });
});
