import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { expect } from 'chai';
import { DEFAULT_PROJECT, type Topology } from '@lb/common/contracts';
import { BoardsRepo, ensureDatabase, migrateTopology, signToken, topologyJson } from '@lb/common/platform';
import { SOURCE_NODE_ARGS, startPostgres, type PostgresProcess } from '@lb/devtools/infra';
import { getInfra, projectDb, uniqueId } from '@lb/devtools/testing';
import { Client, startService, TEST_SECRET, type TestService } from '../leaderboard-service/test/support/service.js';
import { ApiKeysRepo } from '../leaderboard-service/src/db/api-keys-repo.js';
import { rebuildShard } from '../leaderboard-service/src/recovery/rebuild.js';
import { BoardStore } from '../leaderboard-service/src/redis/board-store.js';
import { mainEntry } from './support/main-entry.js';
import { compareRedisWithPostgres, drained, failedJobs } from './support/pipeline.js';
import { eventually, spawnNode, type Child } from './support/processes.js';
import { startServiceProcess } from './support/service-process.js';
import { rng } from './support/reference-board.js';

const WORKER = 'worker-service/src/index.ts';

async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<void>) {
  let i = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (i < items.length) await fn(items[i++]!);
  }));
}

async function startWorker(env: Record<string, string>): Promise<Child> {
  const infra = await getInfra();
  return spawnNode(WORKER, infra.env({ LOG_LEVEL: 'warn', BATCH_SIZE: '200', BATCH_MAX_WAIT_MS: '20', ...env }));
}

/** The harness topology with new, migrated databases on the same Postgres server. */
async function freshDatabases(tag: string): Promise<Topology> {
  const infra = await getInfra();
  const suffix = uniqueId('').replace(/[^a-z0-9]/gi, '').toLowerCase().slice(-8);
  const topology = {
    ...infra.topology,
    shards: infra.topology.shards.map((s) => ({ ...s, postgres: infra.postgres.urlFor(`${tag}_${suffix}_${s.id}`) })),
  };
  for (const s of topology.shards) await ensureDatabase(s.postgres);
  await migrateTopology(topology, join(infra.repoRoot, 'sql'));
  return topology;
}

/** Every answer a client can get for these players, for before/after comparisons. */
async function snapshot(api: Client, players: { user_id: string; region: string }[]) {
  const out: unknown[] = [];
  for (const board of ['GLOBAL', 'NA', 'EU', 'ASIA']) out.push((await api.get(`/top?region=${board}&limit=1000`)).body);
  for (const p of players) {
    out.push((await api.get(`/rank/${p.user_id}`)).body);
    out.push((await api.get(`/around/${p.user_id}?range=3`)).body);
    if (p.region !== 'GLOBAL') out.push((await api.get(`/around/${p.user_id}?region=${p.region}&range=2`)).body);
  }
  return out;
}

describe('write-behind pipeline', function () {
  this.timeout(240_000);

  describe('convergence, history and rebuild', () => {
    let svc: TestService;
    let api: Client;
    const workers: Child[] = [];
    const players: { user_id: string; region: string; token: string }[] = [];

    // Databases of its own: rebuild-redis restores every row of a shard's
    // database, so rows other test files left there would land on these boards.
    let ownTopology = '';
    before(async () => {
      ownTopology = topologyJson(await freshDatabases('conv'));
      svc = await startService({ TOPOLOGY: ownTopology });
      api = new Client(svc.url);
      for (let i = 0; i < 2; i++) workers.push(await startWorker({ KEY_PREFIX: svc.config.keyPrefix, TOPOLOGY: ownTopology }));
      const random = rng(7);
      const regions = ['NA', 'EU', 'ASIA', 'GLOBAL'];
      const ids = Array.from({ length: 300 }, (_, i) => `${svc.config.keyPrefix}-p${i}`);
      await pool(ids, 16, async (id) => {
        const region = regions[Math.floor(random() * regions.length)]!;
        players.push({ user_id: id, region, token: await api.register(id, region, { initialScore: Math.floor(random() * 50) }) });
      });
      const writes = Array.from({ length: 3000 }, () => {
        const p = players[Math.floor(random() * players.length)]!;
        return random() < 0.5 ? { p, path: '/score/update', body: { score: Math.floor(random() * 1000) } } : { p, path: '/score/add', body: { delta: 1 + Math.floor(random() * 9) } };
      });
      await pool(writes, 32, async (w) => {
        const r = await api.post(w.path, w.body, { token: w.p.token });
        expect(r.status, JSON.stringify(r.body)).to.equal(200);
      });
    });
    after(async () => {
      await Promise.all(workers.map((w) => w.stop()));
      await svc?.stop();
    });

    it('when thousands of random writes drain through two workers per queue, then every Postgres row equals Redis and each version is logged exactly once', async () => {
      await eventually('queues drained', () => drained(svc), 120_000);
      expect(await failedJobs(svc)).to.equal(0);
      const mismatches = await compareRedisWithPostgres(svc, players);
      expect(mismatches, JSON.stringify(mismatches.slice(0, 3))).to.deep.equal([]);
    });

    it('when /history is read, then it pages through the events from Postgres, newest first', async () => {
      const p = players.find((x) => x.region === 'EU')!;
      const store = svc.deps.stores.get('eu');
      const version = (await mainEntry(store.client, store.keys, p.user_id)).version!;
      const seen: number[] = [];
      let before: number | null | undefined;
      do {
        const q = before ? `&before=${before}` : '';
        const r = await api.get(`/history/${p.user_id}?limit=2${q}`);
        expect(r.status).to.equal(200);
        seen.push(...r.body.events.map((e: { version: number }) => e.version));
        before = r.body.next_before;
      } while (before);
      expect(seen).to.deep.equal(Array.from({ length: version }, (_, i) => version - i));
      const first = (await api.get(`/history/${p.user_id}?limit=500`)).body.events.at(-1);
      expect(first).to.include({ version: 1, op: 'register', region: 'EU' });
      expect((await api.get(`/history/${uniqueId('nobody')}`)).status).to.equal(404);
      expect((await api.get(`/history/${p.user_id}?limit=0`)).status).to.equal(400);
    });

    it('when a shard loses its Redis data, then rebuild-redis restores every top, rank and around answer, of every project', async () => {
      // A second project on the same shard, whose main has no row of its own (the catalog's default).
      const platform = (await new ApiKeysRepo(svc.deps.pools, svc.deps.router.shards[0]!.id).create('rebuild')).key;
      const admin = async (path: string, body: unknown, key = platform) => {
        const r = await api.request('POST', path, { body, headers: { 'x-api-key': key } });
        expect(r.status, JSON.stringify(r.body)).to.equal(201);
        return r.body;
      };
      const tenant = uniqueId('rb').toLowerCase().replace(/[^a-z0-9]/g, '');
      await admin('/admin/tenants', { id: tenant, name: tenant, plan: 'pro' });
      await admin(`/admin/projects?tenant=${tenant}`, { id: 'live', name: 'Live' });
      const client = (await admin(`/admin/keys?tenant=${tenant}`, { kind: 'client', name: 'c', project: 'live' })).key as string;
      for (let i = 0; i < 6; i++) {
        const reg = await admin('/auth/register', { user_id: `${svc.config.keyPrefix}-p${i}`, name: `Other ${i}`, region: 'EU', password: 'correct horse' }, client);
        expect((await api.post('/score/update', { score: 500 + i }, { token: reg.token as string })).status).to.equal(200);
      }
      const projectTop = async () => (await api.request('GET', '/top?region=EU&limit=10', { headers: { 'x-api-key': client } })).body;
      const projectBefore = await projectTop();
      expect(projectBefore.rows).to.have.length(6);

      await eventually('queues drained', () => drained(svc), 60_000);
      const sample = players.filter((_, i) => i % 5 === 0);
      const before = await snapshot(api, sample);
      const store = svc.deps.stores.get('eu');
      // Lose every key of the shard under this test's prefix (boards, hashes, names).
      const doomed: string[] = [];
      for await (const keys of store.client.scanIterator({ MATCH: `${svc.config.keyPrefix}:{eu}:*`, COUNT: 1000 })) doomed.push(...keys);
      expect(doomed.length, doomed.join(" ")).to.be.greaterThan(4);
      await store.client.del(doomed);
      expect(await snapshot(api, sample)).to.not.deep.equal(before);

      const infra = await getInfra();
      const run = spawnSync(process.execPath, [...SOURCE_NODE_ARGS, 'scripts/rebuild-redis.ts', '--shard', 'eu', '--json'], {
        cwd: infra.repoRoot,
        env: infra.env({ KEY_PREFIX: svc.config.keyPrefix, TOPOLOGY: ownTopology }),
        encoding: 'utf8',
      });
      expect(run.status, run.stderr).to.equal(0);
      const result = JSON.parse(run.stdout);
      expect(result.shards[0].shard).to.equal('eu');
      expect(result.shards[0].restored).to.be.greaterThan(0);
      expect(await snapshot(api, sample)).to.deep.equal(before);
      expect(await projectTop(), "the other project's players, with the ids of default's").to.deep.equal(projectBefore);

      // Later writes continue from the restored versions and still persist in order.
      const p = players.find((x) => x.region === 'EU')!;
      const w = await api.post('/score/add', { delta: 1 }, { token: p.token });
      expect(w.status).to.equal(200);
      await eventually('queues drained', () => drained(svc), 60_000);
      expect(await compareRedisWithPostgres(svc, [p])).to.deep.equal([]);
    });
  });

  describe('the service dies between the Redis write and its answer', () => {
    it('when the process is killed right after its Redis write, then another replica\'s relay still gets the write to Postgres', async () => {
      const prefix = `c${uniqueId('').replace(/[^a-z0-9]/gi, '').toLowerCase().slice(-10)}`;
      const { child, url } = await startServiceProcess(prefix, { TEST_FAULT: 'crash-after-redis-write', RELAY_LEASE_MS: '1000' });
      let svc: TestService | undefined;
      let worker: Child | undefined;
      try {
        const api = new Client(url);
        const user = uniqueId('crash');
        // Not registered here: registration is a Redis write too, and the first one kills this process.
        const token = signToken({ userId: user, name: `Name ${user}`, region: 'ASIA' }, { secret: TEST_SECRET, issuer: 'leaderboard-platform', ttlSeconds: 600 });
        const write = await api.post('/score/update', { score: 77 }, { token }).then(() => 'answered', () => 'connection lost');
        expect(write).to.equal('connection lost');
        expect(await child.exited).to.equal('SIGKILL');

        // The write is in Redis and its event in the outbox, not on the queue; this replica's relay takes the shard over.
        svc = await startService({ KEY_PREFIX: prefix });
        const store = svc.deps.stores.get('asia');
        expect((await mainEntry(store.client, store.keys, user)).score).to.equal(77);
        worker = await startWorker({ KEY_PREFIX: prefix });
        await eventually('event persisted', async () => (await compareRedisWithPostgres(svc!, [{ user_id: user, region: 'ASIA' }])).length === 0, 60_000);
        expect(await store.client.hLen(store.keys.outbox)).to.equal(0);
      } finally {
        await child.stop('SIGKILL');
        await worker?.stop();
        await svc?.stop();
      }
    });
  });

  describe('the replica holding the shards\' relay dies', () => {
    it('when it is killed, then events written through another replica wait in the outbox until its lease lapses, and the other replica then gets every one to Postgres', async () => {
      const prefix = `l${uniqueId('').replace(/[^a-z0-9]/gi, '').toLowerCase().slice(-10)}`;
      // A long lease: the shards stay its own for 15 s after it dies.
      const { child: holder } = await startServiceProcess(prefix, { RELAY_LINGER_MS: '50', RELAY_LEASE_MS: '15000' });
      let svc: TestService | undefined;
      let worker: Child | undefined;
      try {
        svc = await startService({ KEY_PREFIX: prefix, RELAY_LINGER_MS: '50', RELAY_LEASE_MS: '1000' });
        const stores = svc.deps.stores.all();
        const leases = () => Promise.all(stores.map((s) => s.client.get(s.keys.relayLease)));
        await eventually('the first replica holds every shard', async () => (await leases()).every((l) => l !== null), 30_000);
        const held = await leases();
        expect(held).not.to.include(svc.deps.relays.get('na').id);
        await holder.stop('SIGKILL');

        const api = new Client(svc.url);
        const players = ['NA', 'EU', 'ASIA', 'GLOBAL'].map((region) => ({ user_id: uniqueId('lease'), region }));
        for (const [i, p] of players.entries()) {
          const token = signToken({ userId: p.user_id, name: `Name ${p.user_id}`, region: p.region }, { secret: TEST_SECRET, issuer: 'leaderboard-platform', ttlSeconds: 600 });
          for (const score of [10 + i, 20 + i]) expect((await api.post('/score/update', { score }, { token })).status).to.equal(200);
        }
        // Acknowledged and in the outbox index; no relay may send them while the dead one's lease runs.
        expect(await leases()).to.deep.equal(held);
        expect((await Promise.all(stores.map((s) => s.client.zCard(s.keys.outboxIndex)))).reduce((a, b) => a + b, 0)).to.equal(2 * players.length);
        for (const s of stores) expect(await svc.deps.relays.get(s.shard.id).queue.getJobCounts('waiting')).to.deep.equal({ waiting: 0 });

        worker = await startWorker({ KEY_PREFIX: prefix });
        await eventually('events persisted', async () => (await compareRedisWithPostgres(svc!, players)).length === 0, 60_000);
        await eventually('outboxes empty', async () => (await Promise.all(stores.map((s) => s.client.hLen(s.keys.outbox)))).every((n) => n === 0), 30_000);
        expect(await leases()).to.deep.equal(stores.map((s) => svc!.deps.relays.get(s.shard.id).id));
        for (const p of players) {
          const db = projectDb(svc.deps.pools, svc.deps.router.homeShard(p.user_id, p.region).id);
          const r = await db.query('SELECT array_agg(version ORDER BY version)::int[] AS versions FROM score_events WHERE user_id = $1', [p.user_id]);
          expect(r.rows[0].versions, p.user_id).to.deep.equal([1, 2]);
        }
      } finally {
        await holder.stop('SIGKILL');
        await worker?.stop();
        await svc?.stop();
      }
    });
  });

  describe('writes refused by the token buckets', () => {
    it('when parallel writes race against a small bucket, then Postgres holds exactly the accepted ones and nothing of the refused', async () => {
      const topology = await freshDatabases('bk');
      const svc = await startService({ TOPOLOGY: topologyJson(topology), USER_RATE_LIMIT_COUNT: '4', USER_RATE_LIMIT_WINDOW_MS: '600000' });
      const worker = await startWorker({ TOPOLOGY: topologyJson(topology), KEY_PREFIX: svc.config.keyPrefix });
      try {
        const api = new Client(svc.url);
        const players = await Promise.all(['NA', 'EU', 'GLOBAL'].map(async (region) => {
          const id = uniqueId(`bk-${region}`);
          return { user_id: id, region, token: await api.register(id, region) };
        }));
        const rs = await Promise.all(players.flatMap((p) => Array.from({ length: 15 }, () => api.post('/score/add', { delta: 3 }, { token: p.token }))));
        expect(rs.filter((r) => r.status === 200)).to.have.length(12);
        expect(rs.filter((r) => r.status === 429)).to.have.length(33);
        await eventually('backlog drained', () => drained(svc), 60_000, 100);
        // Redis and Postgres agree, and each player's log holds versions 1..5 once: registration and four writes.
        expect(await compareRedisWithPostgres(svc, players)).to.deep.equal([]);
        for (const p of players) {
          const db = projectDb(svc.deps.pools, svc.deps.router.homeShard(p.user_id, p.region).id);
          const r = await db.query('SELECT count(*)::int AS n, max(score)::int AS top FROM score_events WHERE user_id = $1', [p.user_id]);
          expect(r.rows[0]).to.deep.equal({ n: 5, top: 12 });
        }
      } finally {
        await worker.stop();
        await svc.stop();
      }
    });
  });

  describe('named boards', () => {
    it('when scores go to a named board, then Postgres holds each entry of the period at its latest version with metadata, and history filters by board', async () => {
      const topology = await freshDatabases('nb');
      const svc = await startService({ TOPOLOGY: topologyJson(topology) });
      const worker = await startWorker({ TOPOLOGY: topologyJson(topology), KEY_PREFIX: svc.config.keyPrefix });
      try {
        const api = new Client(svc.url);
        const key = (await new ApiKeysRepo(svc.deps.pools, svc.deps.router.shards[0]!.id).create('pipeline')).key;
        const board = uniqueId('persist').toLowerCase();
        expect((await api.request('POST', '/admin/boards', { body: { id: board, operator: 'incr', min_score: -100 }, headers: { 'x-api-key': key } })).status).to.equal(201);
        const players = await Promise.all(['NA', 'EU', 'GLOBAL'].map(async (region) => {
          const id = uniqueId(`nb-${region}`);
          return { id, region, token: await api.register(id, region) };
        }));
        for (const [i, p] of players.entries()) {
          await api.post(`/boards/${board}/scores`, { score: 10 * (i + 1), metadata: { lap: i } }, { token: p.token });
          await api.post(`/boards/${board}/scores`, { score: -3 - i }, { token: p.token });
        }
        await eventually('backlog drained', () => drained(svc), 60_000, 100);
        for (const [i, p] of players.entries()) {
          const db = projectDb(svc.deps.pools, svc.deps.router.homeShard(p.id, p.region).id);
          const row = await db.query('SELECT score::int, version::int, metadata, region FROM board_scores WHERE board = $1 AND period = $2 AND user_id = $3', [board, 'all', p.id]);
          expect(row.rows[0]).to.deep.equal({ score: 10 * (i + 1) - 3 - i, version: 2, metadata: { lap: i }, region: p.region });
          const h = await api.get(`/history/${p.id}?board=${board}`);
          expect(h.body.events.map((e: { version: number; op: string; delta: number; period: string }) => [e.version, e.op, e.delta, e.period])).to.deep.equal([[2, 'incr', -3 - i, 'all'], [1, 'incr', 10 * (i + 1), 'all']]);
          // The main board's history is not mixed with it.
          expect((await api.get(`/history/${p.id}`)).body.events.map((e: { op: string }) => e.op)).to.deep.equal(['register']);
        }
        const page = await api.get(`/history/${players[0]!.id}?board=${board}&limit=1`);
        const next = await api.get(`/history/${players[0]!.id}?board=${board}&limit=1&before=${page.body.next_before}`);
        expect(next.body.events.map((e: { version: number }) => e.version)).to.deep.equal([1]);

        // Redis lost, rebuilt from Postgres: the same answers, equal scores still in the order they were reached.
        const tied = uniqueId('tied').toLowerCase();
        expect((await api.request('POST', '/admin/boards', { body: { id: tied, operator: 'set', tie_break: 'earliest' }, headers: { 'x-api-key': key } })).status).to.equal(201);
        for (const p of [...players].reverse()) await api.post(`/boards/${tied}/scores`, { score: 5, metadata: { p: p.id } }, { token: p.token });
        await eventually('backlog drained', () => drained(svc), 60_000, 100);
        const views = async () => {
          const out = [];
          for (const b of [board, tied, 'main']) for (const v of ['GLOBAL', 'NA', 'EU']) out.push((await api.get(`/boards/${b}/top?region=${v}&limit=101`)).body);
          return out;
        };
        const before = await views();
        for (const s of svc.deps.stores.all()) {
          const bs = new BoardStore(s, DEFAULT_PROJECT);
          await bs.purgeBoard(board);
          await bs.purgeBoard(tied);
          await bs.purgeBoard('main');
        }
        expect((await api.get(`/boards/${tied}/top?region=GLOBAL&limit=101`)).body.total).to.equal(0);
        const boards = await new BoardsRepo(svc.deps.pools, svc.deps.router.shards[0]!.id).ofProject(DEFAULT_PROJECT);
        for (const s of svc.deps.stores.all()) {
          const r = await rebuildShard(svc.deps.router, s, svc.deps.pools, DEFAULT_PROJECT, boards, async () => false);
          expect(r.skipped).to.equal(0);
        }
        expect(await views()).to.deep.equal(before);
        expect(before[3].rows.map((r: { user_id: string }) => r.user_id)).to.deep.equal([...players].reverse().map((p) => p.id));
      } finally {
        await worker.stop();
        await svc.stop();
      }
    });
  });

  describe('Postgres down during writes', () => {
    let pgp: PostgresProcess;
    let dataDir: string;

    after(async () => {
      await pgp?.stop().catch(() => undefined);
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    });

    it('when Postgres stops, then writes are accepted up to QUEUE_REJECT_LENGTH, then 429 queue_full; when it returns the backlog drains and states converge', async () => {
      const infra = await getInfra();
      dataDir = await mkdtemp(join(tmpdir(), 'lb-pgdown-'));
      pgp = await startPostgres({ dataDir: join(dataDir, 'pg'), fast: true });
      const topology = {
        ...infra.topology,
        shards: infra.topology.shards.map((s) => ({ ...s, postgres: pgp.urlFor(`down_${s.id}`) })),
      };
      for (const s of topology.shards) await ensureDatabase(s.postgres);
      await migrateTopology(topology, join(infra.repoRoot, 'sql'));
      const env = { TOPOLOGY: topologyJson(topology) };
      const svc = await startService({ ...env, QUEUE_REJECT_LENGTH: '40' });
      const worker = await startWorker({ ...env, KEY_PREFIX: svc.config.keyPrefix, JOB_ATTEMPTS: '40', JOB_BACKOFF_MS: '100' });
      try {
        const api = new Client(svc.url);
        const players = await Promise.all(Array.from({ length: 5 }, async (_, i) => {
          const id = `${svc.config.keyPrefix}-d${i}`;
          return { user_id: id, region: 'NA', token: await api.register(id, 'NA') };
        }));
        // The registrations' own events reach Postgres first, so the backlog starts empty.
        await eventually('registrations persisted', () => drained(svc), 60_000, 100);
        await pgp.stop();

        // Accounts and history need Postgres: 503 with Retry-After, not 500. Board reads do not.
        const reg = await api.post('/auth/register', { user_id: `${svc.config.keyPrefix}-late`, name: 'Late', region: 'NA', password: 'correct horse' });
        const login = await api.post('/auth/login', { user_id: players[0]!.user_id, password: 'correct horse' });
        const history = await api.get(`/history/${players[0]!.user_id}`);
        for (const r of [reg, login, history]) {
          expect(r.status, JSON.stringify(r.body)).to.equal(503);
          expect(r.body).to.deep.include({ error: 'unavailable', store: 'postgres', retry_after: 1 });
          expect(r.headers.get('retry-after')).to.equal('1');
        }
        expect((await api.get('/top?region=NA')).status).to.equal(200);
        expect((await api.get(`/rank/${players[0]!.user_id}?region=GLOBAL`)).status).to.equal(200);

        const statuses: number[] = [];
        let refused: any;
        for (let i = 0; i < 200 && !refused; i++) {
          const r = await api.post('/score/add', { delta: 1 }, { token: players[i % players.length]!.token });
          statuses.push(r.status);
          if (r.status !== 200) refused = r;
        }
        expect(statuses.slice(0, 40).every((s) => s === 200), JSON.stringify(statuses)).to.equal(true);
        expect(refused, 'a write was refused').to.not.equal(undefined);
        expect(refused.status).to.equal(429);
        expect(refused.body.error).to.equal('queue_full');
        expect(refused.body.queue_length).to.be.at.least(40);

        pgp = await startPostgres({ dataDir: join(dataDir, 'pg'), port: pgp.port, fast: true });
        await eventually('backlog drained', () => drained(svc), 120_000, 200);
        expect(await compareRedisWithPostgres(svc, players)).to.deep.equal([]);
        const after = await api.post('/score/add', { delta: 1 }, { token: players[0]!.token });
        expect(after.status).to.equal(200);
      } finally {
        await worker.stop();
        await svc.stop();
      }
    });
  });
});
