import { expect } from 'chai';
import { DEFAULT_PROJECT, type ScoreEvent, type ShardDef } from '@lb/common/contracts';
import { createLogger } from '@lb/common/platform';
import { getInfra, uniqueId } from '@lb/devtools/testing';
import { PgPools } from '@lb/common/platform';
import { ScoreRepository, InvalidBatchError } from '../src/db/index.js';
import { persistBatch } from '../src/batcher.js';
import { scoreEvent, ShardDb } from './support/worker.js';

/** Deterministic shuffle (mulberry32), so a failure can be replayed. */
function shuffled<T>(xs: readonly T[], seed: number): T[] {
  let a = seed >>> 0;
  const random = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe('ScoreRepository (real Postgres)', function () {
  this.timeout(60_000);
  let shard: ShardDef;
  let pools: PgPools;
  let repo: ScoreRepository;
  const db = new ShardDb();

  before(async () => {
    const infra = await getInfra();
    shard = infra.topology.shards[0]!;
    pools = new PgPools(infra.topology.shards, { size: 4, servicePassword: undefined, statementTimeoutMs: 10_000, applicationName: 'test' }, createLogger('test', 'silent'));
    repo = new ScoreRepository(pools);
  });

  after(async () => {
    await pools?.close();
    await db.close();
  });

  it('when a batch holds several versions of a player, then the row is folded to the newest and every version is logged', async () => {
    const user_id = uniqueId('fold');
    const other = uniqueId('fold');
    const events = [3, 1, 4, 2].map((version) => scoreEvent({ user_id, version, score: version * 7 }));
    events.push(scoreEvent({ user_id: other, version: 1, score: 5 }));

    const r = await repo.applyBatch(shard.id, DEFAULT_PROJECT, events);

    expect(r).to.deep.equal({ events: 5, inserted: 5, players: 2, upserted: 2 });
    const rows = await db.leaderboard(shard, [user_id, other]);
    const newest = events.find((e) => e.version === 4)!;
    expect(rows.get(user_id)).to.deep.equal({
      user_id,
      name: newest.name,
      region: 'NA',
      score: 28,
      version: 4,
      updated_ms: newest.ts,
    });
    expect(rows.get(other)?.score).to.equal(5);
    expect((await db.events(shard, [user_id])).map((e) => [e.version, e.score, e.ts_ms])).to.deep.equal(
      [1, 2, 3, 4].map((v) => [v, v * 7, events.find((e) => e.version === v)!.ts]),
    );
  });

  it('when versions arrive in any order across batches, then an older version never overwrites a newer one', async () => {
    const players = Array.from({ length: 20 }, () => uniqueId('order'));
    const all: ScoreEvent[] = players.flatMap((user_id) =>
      Array.from({ length: 6 }, (_, i) => scoreEvent({ user_id, version: i + 1, score: 100 + i })),
    );
    for (const [k, seed] of [11, 22, 33].entries()) {
      // Three deliveries of everything (duplicates included), each in a different order and batch split.
      const order = shuffled(all, seed);
      const size = 7 + k * 9;
      for (let i = 0; i < order.length; i += size) await repo.applyBatch(shard.id, DEFAULT_PROJECT, order.slice(i, i + size));
    }
    const rows = await db.leaderboard(shard, players);
    for (const user_id of players) expect(rows.get(user_id), user_id).to.include({ version: 6, score: 105 });
  });

  it('when the newest version was applied first, then a later batch of older versions changes nothing but the log', async () => {
    const user_id = uniqueId('late');
    await repo.applyBatch(shard.id, DEFAULT_PROJECT, [scoreEvent({ user_id, version: 9, score: 900, name: 'Newest' })]);

    const r = await repo.applyBatch(shard.id, DEFAULT_PROJECT, [scoreEvent({ user_id, version: 8, score: 1, name: 'Old' })]);

    expect(r.upserted).to.equal(0);
    expect(r.inserted).to.equal(1);
    expect((await db.leaderboard(shard, [user_id])).get(user_id)).to.include({ version: 9, score: 900, name: 'Newest' });
  });

  it('when the same events are applied again (and twice in one batch), then score_events holds each (user_id, version) once', async () => {
    const user_id = uniqueId('dup');
    const events = [1, 2].map((version) => scoreEvent({ user_id, version }));

    const first = await repo.applyBatch(shard.id, DEFAULT_PROJECT, [...events, events[0]!]);
    const again = await repo.applyBatch(shard.id, DEFAULT_PROJECT, events);

    expect(first).to.include({ events: 2, inserted: 2, upserted: 1 });
    expect(again).to.include({ events: 2, inserted: 0, upserted: 0 });
    expect((await db.events(shard, [user_id])).map((e) => e.version)).to.deep.equal([1, 2]);
  });

  it('when postgres refuses one event of a batch, then the whole batch leaves nothing', async () => {
    const good = Array.from({ length: 5 }, () => scoreEvent({ user_id: uniqueId('atomic') }));
    // Passes checkScoreEvent (names up to 800) but not varchar(200).
    const poison = scoreEvent({ user_id: uniqueId('atomic'), name: 'x'.repeat(300) });
    const ids = [...good, poison].map((e) => e.user_id);

    let caught: unknown;
    try {
      await repo.applyBatch(shard.id, DEFAULT_PROJECT, [...good, poison]);
    } catch (e) {
      caught = e;
    }

    expect(caught).to.be.instanceOf(InvalidBatchError);
    expect((caught as InvalidBatchError).sqlState).to.equal('22001');
    expect((await db.leaderboard(shard, ids)).size).to.equal(0);
    expect(await db.events(shard, ids)).to.have.length(0);
  });

  it('when an event is refused by the event log (the statement\'s second write), then the scores its first write made are not kept either', async () => {
    const good = Array.from({ length: 5 }, () => scoreEvent({ user_id: uniqueId('atomic2') }));
    // board_score_events.op is varchar(16); board_scores has no op.
    const poison = scoreEvent({ user_id: uniqueId('atomic2'), op: 'x'.repeat(20) as ScoreEvent['op'] });
    const ids = [...good, poison].map((e) => e.user_id);

    let caught: unknown;
    await repo.applyBatch(shard.id, DEFAULT_PROJECT, [...good, poison]).catch((e: unknown) => (caught = e));

    expect(caught).to.be.instanceOf(InvalidBatchError);
    expect((await db.leaderboard(shard, ids)).size).to.equal(0);
    expect(await db.events(shard, ids)).to.have.length(0);
  });

  it('when a batch of hundreds of events is applied, then it is one statement, prepared once, in one transaction of its project: no statement per event', async () => {
    const pool = pools.forShard(shard.id);
    const sent: string[] = [];
    const spied = new WeakSet<object>();
    const spy = (client: { query: (...args: unknown[]) => unknown }) => {
      if (spied.has(client)) return;
      spied.add(client);
      const query = client.query.bind(client);
      client.query = (...args: unknown[]) => {
        const q = args[0] as string | { name?: string; text: string };
        sent.push(typeof q === 'string' ? q : `${q.name ?? ''}: ${q.text}`);
        return query(...args);
      };
    };
    pool.on('acquire', spy);
    try {
      const players = Array.from({ length: 150 }, () => uniqueId('one'));
      const events = players.flatMap((user_id) => [1, 2].map((version) => scoreEvent({ user_id, version })));
      const r = await repo.applyBatch(shard.id, DEFAULT_PROJECT, events);
      expect(r).to.deep.equal({ events: 300, inserted: 300, players: 150, upserted: 150 });
      expect(sent).to.have.length(4);
      expect(sent[0]).to.equal('BEGIN');
      expect(sent[1]).to.match(/set_config\('app\.tenant_id', \$1, true\), set_config\('app\.project_id', \$2, true\)/);
      expect(sent[2]).to.match(/^lb_apply_score_batch: /);
      expect(sent[2]).to.include('INSERT INTO board_scores').and.to.include('INSERT INTO board_score_events');
      expect(sent[3]).to.equal('COMMIT');
      expect((await db.events(shard, players)).length).to.equal(300);
    } finally {
      pool.off('acquire', spy);
    }
  });

  it('when a batch holds poison events, then persistBatch splits it, refuses only those and persists the rest', async () => {
    const events = Array.from({ length: 16 }, () => scoreEvent({ user_id: uniqueId('split') }));
    events[3] = scoreEvent({ user_id: uniqueId('split'), name: 'y'.repeat(201) });
    events[12] = scoreEvent({ user_id: uniqueId('split'), ts: -9e15 }); // before 4713 BC: out of timestamptz range

    const out = await persistBatch(shard.id, events, repo);

    expect(out.refused.map((r, i) => (r === undefined ? -1 : i)).filter((i) => i >= 0)).to.deep.equal([3, 12]);
    expect(out.counts.inserted).to.equal(14);
    expect(out.transactions).to.be.greaterThan(1);
    const rows = await db.leaderboard(shard, events.map((e) => e.user_id));
    expect(rows.size).to.equal(14);
    expect(rows.has(events[3]!.user_id)).to.equal(false);
  });

  describe('a batch of several projects', () => {
    const projA = { tenant: uniqueId('wa').toLowerCase(), project: 'live' };
    const projB = { tenant: uniqueId('wb').toLowerCase(), project: 'dev' };
    /** The rows of `userIds` in every project, as the owner sees them (row-level security does not apply to it). */
    const scoresOf = async (userIds: readonly string[]) =>
      (
        await db.pool(shard).query<{ tenant_id: string; project_id: string; user_id: string; score: number; version: number; events: number }>(
          `SELECT s.tenant_id, s.project_id, s.user_id, s.score::int AS score, s.version::int AS version,
                  (SELECT count(*)::int FROM board_score_events e
                    WHERE (e.tenant_id, e.project_id, e.board, e.period, e.user_id) = (s.tenant_id, s.project_id, s.board, s.period, s.user_id)) AS events
             FROM board_scores s WHERE s.board = 'main' AND s.user_id = ANY($1::text[]) ORDER BY s.tenant_id, s.project_id, s.user_id`,
          [[...userIds]],
        )
      ).rows;

    it('when one batch mixes two projects’ events and the default project’s (events with neither field), then each is written to its own project’s rows, one transaction per project', async () => {
      const alice = uniqueId('alice');
      const events = [
        scoreEvent({ user_id: alice, version: 1, score: 5, tenant: projA.tenant, project: projA.project }),
        scoreEvent({ user_id: alice, version: 1, score: 70 }),
        scoreEvent({ user_id: alice, version: 1, score: 900, tenant: projB.tenant, project: projB.project }),
        scoreEvent({ user_id: alice, version: 2, score: 6, tenant: projA.tenant, project: projA.project }),
      ];
      const out = await persistBatch(shard.id, events, repo);
      expect(out.refused).to.deep.equal([undefined, undefined, undefined, undefined]);
      expect(out.transactions).to.equal(3);
      expect(out.counts).to.deep.equal({ events: 4, inserted: 4, players: 3, upserted: 3 });
      const byProject = (await scoresOf([alice])).map((r) => [r.tenant_id, r.project_id, r.score, r.version, r.events]);
      expect(byProject).to.have.deep.members([
        [projA.tenant, projA.project, 6, 2, 2],
        [projB.tenant, projB.project, 900, 1, 1],
        ['default', 'default', 70, 1, 1],
      ]);
      // The default project's reader (the view of sql/007) sees only its own row.
      expect((await db.leaderboard(shard, [alice])).get(alice)?.score).to.equal(70);
    });

    it('when a project’s events hold poison, then only that event is refused and the other project’s events are all written', async () => {
      const bob = uniqueId('bob');
      const events = [
        scoreEvent({ user_id: bob, version: 1, score: 1, tenant: projA.tenant, project: projA.project }),
        scoreEvent({ user_id: uniqueId('bad'), name: 'y'.repeat(201), tenant: projA.tenant, project: projA.project }),
        scoreEvent({ user_id: bob, version: 1, score: 2, tenant: projB.tenant, project: projB.project }),
      ];
      const out = await persistBatch(shard.id, events, repo);
      expect(out.refused.map((r) => r !== undefined)).to.deep.equal([false, true, false]);
      expect((await scoresOf([bob])).map((r) => [r.tenant_id, r.score])).to.have.deep.members([
        [projA.tenant, 1],
        [projB.tenant, 2],
      ]);
    });

    it('when one project’s transaction fails for a transient reason, then the batch rejects and its retry writes every event exactly once', async () => {
      const carol = uniqueId('carol');
      const events = [
        scoreEvent({ user_id: carol, version: 1, score: 3, tenant: projA.tenant, project: projA.project }),
        scoreEvent({ user_id: carol, version: 1, score: 4, tenant: projB.tenant, project: projB.project }),
      ];
      let failB = true;
      const flaky = {
        applyBatch: (shardId: string, project: { tenant: string; project: string }, batch: readonly ScoreEvent[]) => {
          if (project.tenant === projB.tenant && failB) {
            failB = false;
            return Promise.reject(new Error('ECONNRESET'));
          }
          return repo.applyBatch(shardId, project, batch);
        },
      };
      let caught: unknown;
      await persistBatch(shard.id, events, flaky).catch((e: unknown) => (caught = e));
      expect((caught as Error | undefined)?.message).to.equal('ECONNRESET');
      // A's group committed before B's failed; the retry of the whole batch must not apply it twice.
      const retry = await persistBatch(shard.id, events, flaky);
      expect(retry.counts).to.include({ inserted: 1 });
      expect((await scoresOf([carol])).map((r) => [r.tenant_id, r.score, r.version, r.events])).to.have.deep.members([
        [projA.tenant, 3, 1, 1],
        [projB.tenant, 4, 1, 1],
      ]);
    });
  });

  it('when the database does not exist, then applyBatch rejects with a retryable (not an InvalidBatchError) error', async () => {
    const broken = { ...shard, postgres: shard.postgres.replace(/\/[^/]+$/, '/lb_missing_db') };
    const p = new PgPools([broken], { size: 1, servicePassword: undefined, statementTimeoutMs: 1000, applicationName: 'test' }, createLogger('test', 'silent'));
    try {
      let caught: unknown;
      await new ScoreRepository(p).applyBatch(shard.id, DEFAULT_PROJECT, [scoreEvent()]).catch((e: unknown) => (caught = e));
      expect(caught).to.be.instanceOf(Error);
      expect(caught).not.to.be.instanceOf(InvalidBatchError);
    } finally {
      await p.close();
    }
  });
});
