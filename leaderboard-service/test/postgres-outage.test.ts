/**
 * Postgres up but not taking sessions, or going down (issue 17): every
 * route that needs Postgres answers 503 `unavailable` with Retry-After —
 * never 500 — while the board reads and writes (Redis) go on, and all of
 * them answer 200 again once Postgres accepts sessions. On a PRIVATE
 * Postgres (devtools testing/postgres-outage.ts), connected to as a
 * non-superuser role, so that the outages do not touch the shared server.
 */
import { expect } from 'chai';
import { periodAt, previousPeriod } from '@lb/common/contracts';
import { OUTAGES, startOutagePostgres, uniqueId, type OutagePostgres } from '@lb/devtools/testing';
import { ApiKeysRepo } from '../src/db/api-keys-repo.js';
import { Client, startService, type Reply, type TestService } from './support/service.js';
import { topologyJson } from '@lb/common/platform';

describe('leaderboard-service when Postgres is unavailable (private server)', function () {
  this.timeout(120_000);
  let pgx: OutagePostgres;
  let svc: TestService;
  let api: Client;
  let cachedKey: string;
  const player = uniqueId('pgout');
  let token: string;
  const board = uniqueId('pgout').toLowerCase();
  const yesterday = previousPeriod('daily', periodAt('daily', Date.now()))!.id;

  before(async () => {
    pgx = await startOutagePostgres();
    // API keys checked once are trusted for 10 minutes: the admin create below reaches the board store.
    svc = await startService({ TOPOLOGY: topologyJson(pgx.topology), API_KEY_CACHE_MS: '600000' });
    api = new Client(svc.url);
    token = await api.register(player, 'EU');
    const keys = new ApiKeysRepo(svc.deps.pools, svc.deps.router.shards[0]!.id);
    cachedKey = (await keys.create('outage cached')).key;
    expect((await api.request('POST', '/admin/boards', { body: { id: board, reset: 'daily' }, headers: { 'x-api-key': cachedKey } })).status).to.equal(201);
    // An archived period, as the worker's close writes it.
    await pgx.query('lb_na', "INSERT INTO period_closes (tenant_id, project_id, board, period, players) VALUES ('default', 'default', $1, $2, 1)", [board, yesterday]);
    await pgx.query(
      'lb_na',
      `INSERT INTO period_archive (tenant_id, project_id, board, period, view, position, rank, user_id, name, score, stored, member) VALUES ('default', 'default', $1, $2, 'GLOBAL', 0, 1, $3, 'Archived', 7, '-7', $3)`,
      [board, yesterday, player],
    );
  });

  after(async () => {
    await svc?.stop();
    await pgx?.stop();
  });

  /** Every route that needs Postgres, with a fresh user id / board id / key where it creates one. */
  async function postgresRoutes(): Promise<Record<string, Reply>> {
    return {
      login: await api.post('/auth/login', { user_id: player, password: 'correct horse' }),
      register: await api.post('/auth/register', { user_id: uniqueId('pgnew'), name: 'New', region: 'NA', password: 'correct horse' }),
      history: await api.get(`/history/${player}`),
      boardHistory: await api.get(`/history/${player}?board=${board}`),
      archivedTop: await api.get(`/boards/${board}/top?period=${yesterday}&region=GLOBAL`),
      archivedRank: await api.get(`/boards/${board}/rank/${player}?period=${yesterday}&region=GLOBAL`),
      periods: await api.get(`/boards/${board}/periods`),
      adminCreate: await api.request('POST', '/admin/boards', { body: { id: uniqueId('pgb').toLowerCase() }, headers: { 'x-api-key': cachedKey } }),
      apiKeyAuth: await api.get('/admin/stats', { headers: { 'x-api-key': keyNotYetSeen } }),
      // A board this replica does not know may exist (made through another replica): 503, not 404, while Postgres cannot say.
      unknownBoard: await api.get(`/boards/${uniqueId('pgnone').toLowerCase()}/top`),
    };
  }

  /** Routes served from Redis: they must not notice. */
  async function redisRoutes(): Promise<Record<string, Reply>> {
    return {
      scoreUpdate: await api.post('/score/update', { score: Math.floor(Math.random() * 1000) }, { token }),
      top: await api.get('/top?region=EU&limit=10'),
      rank: await api.get(`/rank/${player}?region=GLOBAL`),
      around: await api.get(`/around/${player}?region=GLOBAL&range=2`),
      boardWrite: await api.post(`/boards/${board}/scores`, { score: 5 }, { token }),
      boardTop: await api.get(`/boards/${board}/top?region=GLOBAL`),
    };
  }

  /** A key this replica has never checked: its check needs Postgres. */
  let keyNotYetSeen: string;
  const newKey = async () => (keyNotYetSeen = (await new ApiKeysRepo(svc.deps.pools, svc.deps.router.shards[0]!.id).create('outage uncached')).key);

  const statuses = (r: Record<string, Reply>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.status]));

  for (const outage of OUTAGES) {
    it(`when Postgres is in ${outage}, then every Postgres route answers 503 unavailable with Retry-After, Redis routes 200, and all 200 once it is back`, async () => {
      await newKey();
      const okBefore = statuses(await postgresRoutes());
      expect(okBefore, 'before the outage').to.deep.equal({
        login: 200, register: 201, history: 200, boardHistory: 200, archivedTop: 200, archivedRank: 200, periods: 200, adminCreate: 201, apiKeyAuth: 200, unknownBoard: 404,
      });
      await newKey();
      await pgx.start(outage);
      let down: Record<string, Reply>;
      let redis: Record<string, Reply>;
      try {
        down = await postgresRoutes();
        redis = await redisRoutes();
      } finally {
        await pgx.restore();
      }
      for (const [route, r] of Object.entries(down)) {
        expect([route, r.status, r.body?.error, r.body?.store], JSON.stringify(r.body)).to.deep.equal([route, 503, 'unavailable', 'postgres']);
        expect(r.headers.get('retry-after'), route).to.equal('1');
      }
      expect(statuses(redis), 'Redis routes during the outage').to.deep.equal({ scoreUpdate: 200, top: 200, rank: 200, around: 200, boardWrite: 200, boardTop: 200 });

      await newKey();
      expect(statuses(await postgresRoutes()), 'after the outage').to.deep.equal(okBefore);
      expect(statuses(await redisRoutes())).to.deep.equal({ scoreUpdate: 200, top: 200, rank: 200, around: 200, boardWrite: 200, boardTop: 200 });
    });
  }
});
