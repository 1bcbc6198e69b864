/**
 * A deliberately simple model of the boards, for checking the real service:
 * every answer is computed by sorting all players, with no cleverness. The
 * order is the platform's one definition of it (@lb/common ranking.ts);
 * ranks, windows and percentiles are counted here by brute force.
 */
import { compareBoard } from '@lb/common/contracts';

export interface RefPlayer {
  user_id: string;
  name: string;
  region: string;
  score: number;
}

export interface RefRow {
  rank: number;
  user_id: string;
  name: string;
  score: number;
}

export class ReferenceBoards {
  readonly players = new Map<string, RefPlayer>();

  set(p: RefPlayer): void {
    this.players.set(p.user_id, { ...p });
  }

  private board(board: string): RefPlayer[] {
    const all = [...this.players.values()].filter((p) => board === 'GLOBAL' || p.region === board);
    return all.sort(compareBoard);
  }

  private rankOf(list: RefPlayer[], score: number): number {
    return 1 + list.filter((p) => p.score > score).length;
  }

  private row(list: RefPlayer[], p: RefPlayer): RefRow {
    return { rank: this.rankOf(list, p.score), user_id: p.user_id, name: p.name, score: p.score };
  }

  top(board: string, limit: number): { region: string; total: number; rows: RefRow[] } {
    const list = this.board(board);
    return { region: board, total: list.length, rows: list.slice(0, limit).map((p) => this.row(list, p)) };
  }

  rank(board: string, userId: string) {
    const list = this.board(board);
    const p = list.find((x) => x.user_id === userId);
    if (!p) return undefined;
    const lower = list.filter((x) => x.score < p.score).length;
    return {
      found: true as const,
      user_id: p.user_id,
      name: p.name,
      region: p.region,
      board,
      score: p.score,
      rank: this.rankOf(list, p.score),
      total: list.length,
      percentile: list.length === 0 ? 0 : Math.round((lower / list.length) * 10000) / 100,
    };
  }

  around(board: string, userId: string, range: number) {
    const list = this.board(board);
    const i = list.findIndex((x) => x.user_id === userId);
    if (i < 0) return undefined;
    const above = list.slice(Math.max(0, i - range), i);
    const below = list.slice(i + 1, i + 1 + range);
    return {
      region: board,
      self: this.row(list, list[i]!),
      around: [...above, ...below].map((p) => this.row(list, p)),
    };
  }
}

/** A seeded pseudo-random generator (mulberry32), so failures can be replayed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
