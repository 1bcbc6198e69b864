/**
 * The fault handling every board shares with the board `main`: a named
 * board's write whose process dies between its Redis script and its
 * enqueue still reaches Postgres through the outbox, and a named board's
 * GLOBAL reads with a shard down are 503 unless a partial answer is asked
 * for.
 */
import { expect } from 'chai';
import { signToken, topologyJson } from '@lb/common/platform';
import { freePort } from '@lb/devtools/infra';
import { getInfra, projectDb, uniqueId } from '@lb/devtools/testing';
import { Client, startService, TEST_SECRET, type TestService } from '../leaderboard-service/test/support/service.js';
import { ApiKeysRepo } from '../leaderboard-service/src/db/api-keys-repo.js';
import { eventually, spawnNode, type Child } from './support/processes.js';
import { DEFAULT_PROJECT } from '@lb/common/contracts';
import { startServiceProcess } from './support/service-process.js';

const WORKER = 'worker-service/src/index.ts';

/** A new board on the service's control plane, created through the admin API. */
async function createBoard(svc: TestService, definition: Record<string, unknown>): Promise<string> {
  const key = (await new ApiKeysRepo(svc.deps.pools, svc.deps.router.shards[0]!.id).create('faults')).key;
  const id = uniqueId('fb').toLowerCase().replace(/[^a-z0-9_-]/g, '-').slice(0, 60);
  const r = await new Client(svc.url).request('POST', '/admin/boards', { body: { id, ...definition }, headers: { 'x-api-key': key } });
  expect(r.status, JSON.stringify(r.body)).to.equal(201);
  return id;
}

const tokenFor = (userId: string, region: string) => signToken({ userId, name: `Name ${userId}`, region }, { secret: TEST_SECRET, issuer: 'leaderboard-platform', ttlSeconds: 600 });

describe('faults on named boards', function () {
  this.timeout(120_000);

  it('when the process is killed right after a named board write reached Redis, then another replica\'s relay still gets it to Postgres', async () => {
    const infra = await getInfra();
    const prefix = `c${uniqueId('').replace(/[^a-z0-9]/gi, '').toLowerCase().slice(-10)}`;
    const setup = await startService({ KEY_PREFIX: prefix });
    const board = await createBoard(setup, { order: 'asc', operator: 'best', tie_break: 'earliest' });
    await setup.stop();
    const { child, url } = await startServiceProcess(prefix, { TEST_FAULT: 'crash-after-redis-write', RELAY_LEASE_MS: '1000' });
    let svc: TestService | undefined;
    let worker: Child | undefined;
    try {
      const user = uniqueId('crash');
      const write = await new Client(url)
        .post(`/boards/${board}/scores`, { score: 4242, metadata: { lap: 3 } }, { token: tokenFor(user, 'EU') })
        .then(() => 'answered', () => 'connection lost');
      expect(write).to.equal('connection lost');
      expect(await child.exited).to.equal('SIGKILL');

      // The entry is in Redis and its event in the outbox; this replica's relay takes the shard over.
      svc = await startService({ KEY_PREFIX: prefix });
      const store = svc.deps.stores.get('eu');
      const keys = store.keys.project(DEFAULT_PROJECT).boardPeriod(board, 'all');
      expect(await store.client.hGet(keys.versions, user)).to.equal('1');
      expect(await store.client.hLen(store.keys.outbox)).to.equal(1);
      worker = spawnNode(WORKER, infra.env({ KEY_PREFIX: prefix, LOG_LEVEL: 'warn', BATCH_MAX_WAIT_MS: '20' }));
      const db = projectDb(svc.deps.pools, 'eu');
      await eventually('event persisted', async () => (await db.query('SELECT 1 FROM board_score_events WHERE board = $1 AND user_id = $2', [board, user])).rowCount === 1, 60_000);
      const row = (await db.query('SELECT period, score::int, version::int, metadata FROM board_scores WHERE board = $1 AND user_id = $2', [board, user])).rows[0];
      expect(row).to.deep.equal({ period: 'all', score: 4242, version: 1, metadata: { lap: 3 } });
      await eventually('outbox emptied', async () => (await store.client.hLen(store.keys.outbox)) === 0, 30_000);
    } finally {
      await child.stop('SIGKILL');
      await worker?.stop();
      await svc?.stop();
    }
  });

  describe('a shard that is down', () => {
    let svc: TestService;
    let api: Client;
    let board: string;
    const eu = uniqueId('eu');
    const na = uniqueId('na');
    before(async () => {
      const base = await startService();
      board = await createBoard(base, { order: 'desc', operator: 'set', tie_break: 'shared' });
      const baseApi = new Client(base.url);
      expect((await baseApi.post(`/boards/${board}/scores`, { score: 50 }, { token: tokenFor(eu, 'EU') })).status).to.equal(200);
      expect((await baseApi.post(`/boards/${board}/scores`, { score: 70 }, { token: tokenFor(na, 'NA') })).status).to.equal(200);
      const dead = `redis://127.0.0.1:${await freePort()}`;
      const topology = { ...base.topology, shards: base.topology.shards.map((s) => (s.id === 'asia' ? { ...s, redis: { kind: 'server' as const, url: dead } } : s)) };
      svc = await startService({ TOPOLOGY: topologyJson(topology), KEY_PREFIX: base.config.keyPrefix, REDIS_COMMAND_TIMEOUT_MS: '300' });
      await base.stop();
      api = new Client(svc.url);
    });
    after(async () => svc?.stop());

    it('when a GLOBAL read of a named board needs it, then 503 naming it, unless a partial answer is asked for', async () => {
      for (const path of [`/boards/${board}/top?region=GLOBAL`, `/boards/${board}/rank/${eu}?region=GLOBAL`, `/boards/${board}/around/${eu}?region=GLOBAL`]) {
        const r = await api.get(path);
        expect(r.status, path).to.equal(503);
        expect(r.body, path).to.deep.include({ error: 'unavailable', shard: 'asia', retry_after: 1 });
      }
      const top = await api.get(`/boards/${board}/top?region=GLOBAL&partial=true`);
      expect(top.status).to.equal(200);
      expect(top.body).to.deep.include({ board, period: 'all', partial: true, missing_shards: ['asia'], total: 2 });
      expect(top.body.rows.map((r: { score: number; rank: number }) => [r.rank, r.score])).to.deep.equal([[1, 70], [2, 50]]);
      const rank = await api.get(`/boards/${board}/rank/${eu}?region=GLOBAL&partial=1`);
      expect(rank.body).to.deep.include({ found: true, rank: 2, total: 2, partial: true, missing_shards: ['asia'] });
      const around = await api.get(`/boards/${board}/around/${eu}?region=GLOBAL&partial=true`);
      expect(around.body).to.deep.include({ partial: true, missing_shards: ['asia'] });
      expect(around.body.self).to.deep.include({ rank: 2, score: 50 });
      expect(around.body.around.map((r: { user_id: string }) => r.user_id)).to.deep.equal([na]);
      expect((await api.get(`/boards/${board}/top?region=GLOBAL&partial=maybe`)).body.error).to.equal('invalid_query');
      // The board main answers the same way through the board routes.
      expect((await api.get('/boards/main/top?region=GLOBAL&partial=true')).body).to.deep.include({ board: 'main', partial: true, missing_shards: ['asia'] });
    });

    it('when a player is found on no shard that answered, then 503 rather than 404, and regional views are answered as before', async () => {
      const r = await api.get(`/boards/${board}/rank/${uniqueId('somewhere')}?region=GLOBAL&partial=true`);
      expect(r.status).to.equal(503);
      expect(r.body.shard).to.equal('asia');
      const regional = await api.get(`/boards/${board}/top?region=EU`);
      expect(regional.status).to.equal(200);
      expect(regional.body).to.not.have.property('partial');
      expect(regional.body.rows.map((x: { user_id: string }) => x.user_id)).to.deep.equal([eu]);
    });
  });
});
