/**
 * The named boards' part of the HTTP benchmark, on the stack the HTTP bench
 * started and seeded: writes to a `best` board with 200-byte metadata, ranks
 * of 50 friends, and many boards — `boards` × `perBoard` players seeded
 * through the service's own board writer — read at random; Redis bytes per
 * board entry with and without metadata.
 */
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { DEFAULT_PROJECT, NO_PROJECT_LIMITS } from '@lb/common/contracts';
import type { createDeps } from '@lb/leaderboard-service/deps';
import { fmt } from './machine.js';
import type { MixEntry } from './load.js';

type Deps = Awaited<ReturnType<typeof createDeps>>;

export interface BoardsSetup {
  /** Mixes of the board runs, by name. */
  runs: { name: string; mix: MixEntry[] }[];
  bytesPerEntry: number;
  bytesPerEntryWithMetadata: number;
  boards: number;
  perBoard: number;
}

const REGIONS = ['NA', 'EU', 'ASIA', 'GLOBAL'];

async function usedMemory(deps: Deps): Promise<number> {
  let total = 0;
  for (const s of deps.stores.all()) total += Number(/used_memory:(\d+)/.exec(await s.client.info('memory'))?.[1] ?? 0);
  return total;
}

async function admin(url: string, keyFile: string, body: unknown): Promise<void> {
  const r = await fetch(`${url}/admin/boards`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': readFileSync(keyFile, 'utf8').trim() }, body: JSON.stringify(body) });
  if (r.status !== 201) throw new Error(`board ${JSON.stringify(body)}: ${r.status} ${await r.text()}`);
}

/** Runs `n` tasks with `lanes` in flight. */
async function pool(n: number, lanes: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: lanes }, async () => {
    while (next < n) await task(next++);
  }));
}

/**
 * Creates and seeds the boards, measures Redis bytes per entry, and returns
 * the mixes to run: `players` are the seeded main-board players (`p<i>`),
 * `tokens` their tokens in the same order.
 */
export async function setupBoards(o: { url: string; adminKeyFile: string; deps: Deps; players: number; tokens: readonly string[]; boards: number; perBoard: number; log: (s: string) => void }): Promise<BoardsSetup> {
  const { deps } = o;
  await admin(o.url, o.adminKeyFile, { id: 'bench-best', operator: 'best', max_metadata_bytes: 1024 });
  for (let b = 0; b < o.boards; b++) await admin(o.url, o.adminKeyFile, { id: `bench-${b}`, operator: 'set' });
  // Every replica has it now or finds it on its first miss.
  await deps.catalog.reload();
  const t0 = performance.now();
  const before = await usedMemory(deps);
  await pool(o.boards * o.perBoard, 64, async (i) => {
    const b = Math.floor(i / o.perBoard);
    const p = i % o.perBoard;
    await deps.writer.submit({
      project: DEFAULT_PROJECT,
      limits: NO_PROJECT_LIMITS,
      board: deps.catalog.get(DEFAULT_PROJECT, `bench-${b}`)!,
      player: { userId: `p${p}`, name: `Player ${p}`, region: REGIONS[p % 4]! },
      byPlayer: false,
      value: Math.floor(Math.random() * 1_000_000),
      requestId: 'seed',
    });
  });
  const bytesPerEntry = ((await usedMemory(deps)) - before) / (o.boards * o.perBoard);
  o.log(`seeded ${fmt(o.boards)} boards × ${fmt(o.perBoard)} players in ${fmt((performance.now() - t0) / 1000, 1)} s; ${fmt(bytesPerEntry)} Redis bytes per entry`);
  // The best board with metadata: 10,000 entries for the per-entry figure.
  const pad = randomBytes(100).toString('hex'); // 200 bytes
  const withMetaBefore = await usedMemory(deps);
  await pool(10_000, 64, async (p) => {
    await deps.writer.submit({
      project: DEFAULT_PROJECT,
      limits: NO_PROJECT_LIMITS,
      board: deps.catalog.get(DEFAULT_PROJECT, 'bench-best')!,
      player: { userId: `p${p}`, name: `Player ${p}`, region: REGIONS[p % 4]! },
      byPlayer: false,
      value: Math.floor(Math.random() * 1_000_000),
      metadata: { pad },
      requestId: 'seed',
    });
  });
  const bytesPerEntryWithMetadata = ((await usedMemory(deps)) - withMetaBefore) / 10_000;
  o.log(`best board: ${fmt(bytesPerEntryWithMetadata)} Redis bytes per entry with 200-byte metadata`);

  const random = (n: number) => Math.floor(Math.random() * n);
  const bestBodies = Array.from({ length: 2000 }, () => JSON.stringify({ score: random(2_000_000), metadata: { pad } }));
  const friends = Array.from({ length: 500 }, () => JSON.stringify({ user_ids: Array.from({ length: 50 }, () => `p${random(10_000)}`) }));
  return {
    boards: o.boards,
    perBoard: o.perBoard,
    bytesPerEntry,
    bytesPerEntryWithMetadata,
    runs: [
      { name: 'writes to a best board (200-byte metadata)', mix: [{ weight: 1, method: 'POST', paths: ['/boards/bench-best/scores'], bodies: bestBodies, tokens: o.tokens }] },
      { name: 'ranks of 50 friends (GLOBAL)', mix: [{ weight: 1, method: 'POST', paths: ['/boards/bench-best/ranks'], bodies: friends }] },
      {
        name: `top 10 of ${fmt(o.boards)} boards at random (GLOBAL)`,
        mix: [{ weight: 1, method: 'GET', paths: Array.from({ length: o.boards }, (_, b) => `/boards/bench-${b}/top?region=GLOBAL&limit=10`) }],
      },
    ],
  };
}
