/**
 * An upgrade in place from the old layout of the board `main`: databases
 * migrated up to 006 and filled with rows in the old tables (`leaderboard`,
 * `score_events`) and in every other table a project now owns (the layout
 * before sql/008's tenancy) by this test, then brought to the current
 * schema. Every row of those tables must be the default project's after
 * sql/008, none lost. Every
 * score, version, event, timestamp and request id must survive sql/007, the
 * old table names must still read the same rows, and a stack started on the
 * upgraded databases (Redis rebuilt from them) must answer /top, /rank,
 * /around and /history exactly as the old rows say. And Redis in main's old
 * layout (`board:<view>` sorted sets, a `user:<id>` hash per player), written
 * by this test, is converted when the service starts: the same answers,
 * versions kept, the old keys gone. And Redis in the layout before tenancy
 * (layout 2: no project in any key name), written by this test, becomes the
 * default project's when two replicas start on it at once: every score,
 * name, region, board period and its metadata, idempotency record and
 * per-player bucket kept, and events waiting in the outbox still sent and
 * persisted.
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import pg from 'pg';
import type { RedisClientType } from 'redis';
import { DEFAULT_PROJECT, parseReset, periodAt, previousPeriod, ShardRouter, shardKeys, upgradedKeyName, type Topology } from '@lb/common/contracts';
import { ensureDatabase, migrateTopology, openRedis, serviceRoleUrl, signToken, topologyJson } from '@lb/common/platform';
import { getInfra, uniqueId } from '@lb/devtools/testing';
import { Client, startService, type TestService } from '../leaderboard-service/test/support/service.js';
import { ApiKeysRepo } from '../leaderboard-service/src/db/api-keys-repo.js';
import { LAYOUT_VERSION, upgradeLayout } from '../leaderboard-service/src/recovery/layout.js';
import { rebuildShard } from '../leaderboard-service/src/recovery/rebuild.js';
import { eventually, spawnNode, type Child } from './support/processes.js';
import { ReferenceBoards, rng } from './support/reference-board.js';

interface OldEvent {
  user_id: string;
  version: number;
  region: string;
  op: string;
  delta: number;
  score: number;
  ts: Date;
  request_id: string | null;
  created_at: Date;
}

interface OldRow {
  user_id: string;
  name: string;
  region: string;
  score: number;
  version: number;
  updated_at: Date;
}

/** Fresh databases on the harness' Postgres, migrated with the files numbered up to `last` only. */
async function databasesAt(last: number): Promise<Topology> {
  const infra = await getInfra();
  const suffix = uniqueId('').replace(/[^a-z0-9]/gi, '').toLowerCase().slice(-8);
  const topology = { ...infra.topology, shards: infra.topology.shards.map((s) => ({ ...s, postgres: infra.postgres.urlFor(`upg_${suffix}_${s.id}`) })) };
  for (const s of topology.shards) await ensureDatabase(s.postgres);
  await migrateUpTo(topology, last);
  return topology;
}

/** Applies the migrations numbered up to `last` (the others wait for a later run). */
async function migrateUpTo(topology: Topology, last: number): Promise<void> {
  const infra = await getInfra();
  const dir = await mkdtemp(join(tmpdir(), 'lb-sql-'));
  try {
    for (const f of await readdir(join(infra.repoRoot, 'sql'))) {
      const n = /^(\d+)_/.exec(f);
      if (n && Number(n[1]) <= last) await copyFile(join(infra.repoRoot, 'sql', f), join(dir, f));
    }
    await migrateTopology(topology, dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function withDb<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

describe('upgrade in place: the board main from its old tables', function () {
  this.timeout(180_000);
  let topology: Topology;
  let router: ShardRouter;
  const rows: OldRow[] = [];
  const events: OldEvent[] = [];
  const model = new ReferenceBoards();
  /** The tables sql/008 gives a project, and their row counts before it ran (over every database). */
  const TENANT_TABLES = ['accounts', 'user_directory', 'boards', 'board_scores', 'board_score_events', 'period_closes', 'period_archive', 'webhook_deliveries'];
  const before008 = new Map<string, number>();

  before(async () => {
    topology = await databasesAt(6);
    router = new ShardRouter(topology);
    const random = rng(18);
    const regions = ['NA', 'EU', 'ASIA', 'GLOBAL'];
    const t0 = Date.UTC(2026, 10, 20, 12, 0, 0);
    for (let i = 0; i < 80; i++) {
      const user_id = `old${i}`;
      const region = regions[i % regions.length]!;
      const versions = 1 + Math.floor(random() * 4);
      let score = 0;
      for (let v = 1; v <= versions; v++) {
        const op = v === 1 ? 'register' : random() < 0.5 ? 'update' : 'add';
        const next = op === 'add' ? score + 1 + Math.floor(random() * 5) : Math.floor(random() * 12);
        const ts = new Date(t0 + i * 1000 + v * 10);
        events.push({ user_id, version: v, region, op, delta: next - score, score: next, ts, request_id: v === 2 ? null : `req-${i}-${v}`, created_at: new Date(ts.getTime() + 3) });
        score = next;
      }
      const row = { user_id, name: `Old ${i}`, region, score, version: versions, updated_at: new Date(t0 + i * 1000 + versions * 10) };
      rows.push(row);
      model.set({ user_id, name: row.name, region, score });
    }
    for (const s of topology.shards) {
      const mine = rows.filter((r) => router.homeShard(r.user_id, r.region).id === s.id);
      const ids = new Set(mine.map((r) => r.user_id));
      await withDb(s.postgres, async (c) => {
        for (const r of mine) {
          await c.query('INSERT INTO leaderboard (user_id, name, region, score, version, updated_at) VALUES ($1, $2, $3, $4, $5, $6)', [r.user_id, r.name, r.region, r.score, r.version, r.updated_at]);
          await c.query('INSERT INTO accounts (user_id, name, region, password_hash) VALUES ($1, $2, $3, $4)', [r.user_id, r.name, r.region, 'x']);
        }
        for (const e of events.filter((x) => ids.has(x.user_id))) {
          await c.query('INSERT INTO score_events (user_id, version, region, op, delta, score, ts, request_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)', [
            e.user_id, e.version, e.region, e.op, e.delta, e.score, e.ts, e.request_id, e.created_at,
          ]);
        }
      });
    }
    // The control plane's tables in their pre-008 layout: a named board, a closed period with its archive and delivery, directory claims.
    await withDb(topology.shards[0]!.postgres, async (c) => {
      await c.query(
        `INSERT INTO boards (id, title, sort_order, operator, reset, tie_break, min_score, max_score, max_metadata_bytes, client_writes, allow_operator_override, webhook_url)
         VALUES ('oldweekly', 'Old weekly', 'desc', 'best', 'weekly', 'shared', 0, 1000, 0, true, false, 'http://127.0.0.1:9/hook')`,
      );
      await c.query("INSERT INTO period_closes (board, period, players) VALUES ('oldweekly', '2026-W40', 2)");
      for (const [position, user] of ['old0', 'old1'].entries()) {
        await c.query(
          "INSERT INTO period_archive (board, period, view, position, rank, user_id, name, score, stored, member) VALUES ('oldweekly', '2026-W40', 'GLOBAL', $1, $2, $3::text, $3::text, $4::bigint, $4::text, $3::text)",
          [position, position + 1, user, 10 - position],
        );
      }
      await c.query("INSERT INTO webhook_deliveries (id, board, period, url, payload) VALUES ('oldweekly/2026-W40', 'oldweekly', '2026-W40', 'http://127.0.0.1:9/hook', '{}')");
      for (const r of rows.slice(0, 10)) await c.query('INSERT INTO user_directory (user_id, region, shard_id) VALUES ($1, $2, $3)', [r.user_id, r.region, router.homeShard(r.user_id, r.region).id]);
    });
    // 007 first (main's rows into the board tables), then the counts sql/008 must keep.
    await migrateUpTo(topology, 7);
    for (const t of TENANT_TABLES) before008.set(t, (await everywhere<{ n: number }>(`SELECT count(*)::int AS n FROM ${t}`)).reduce((a, r) => a + r.n, 0));
    const infra = await getInfra();
    await migrateTopology(topology, join(infra.repoRoot, 'sql'));
  });

  /** /top, /rank and /around of every view answer as the old rows say. */
  async function expectOldAnswers(api: Client): Promise<void> {
      for (const view of ['GLOBAL', 'NA', 'EU', 'ASIA']) expect((await api.get(`/top?region=${view}&limit=1000`)).body).to.deep.equal(model.top(view, 1000));
      for (const r of rows) {
        expect((await api.get(`/rank/${r.user_id}`)).body).to.deep.equal(model.rank('GLOBAL', r.user_id));
        expect((await api.get(`/around/${r.user_id}?range=3`)).body).to.deep.equal(model.around('GLOBAL', r.user_id, 3));
        if (r.region !== 'GLOBAL') expect((await api.get(`/rank/${r.user_id}?region=${r.region}`)).body).to.deep.equal(model.rank(r.region, r.user_id));
      }
  }

  /** Runs `fn` on a client of every shard's Redis (outside any service). */
  async function onShards<T>(fn: (c: RedisClientType, shard: string) => Promise<T>): Promise<T[]> {
    return Promise.all(
      topology.shards.map(async (s) => {
        const h = openRedis(s.redis);
        await h.connect();
        const c = h.client as unknown as RedisClientType;
        try {
          return await fn(c, s.id);
        } finally {
          await h.close();
        }
      }),
    );
  }

  /** Every database's rows of a query, over the shards' distinct databases. */
  async function everywhere<T>(sql: string): Promise<T[]> {
    const urls = [...new Set(topology.shards.map((s) => s.postgres))];
    return (await Promise.all(urls.map((u) => withDb(u, async (c) => (await c.query(sql)).rows as T[])))).flat();
  }

  const byUser = (a: object, b: object) => {
    const x = a as { user_id: string; version?: number };
    const y = b as { user_id: string; version?: number };
    return x.user_id < y.user_id ? -1 : x.user_id > y.user_id ? 1 : (x.version ?? 0) - (y.version ?? 0);
  };
  const num = (r: Record<string, unknown>, ...keys: string[]): object => ({ ...r, ...Object.fromEntries(keys.map((k) => [k, Number(r[k])])) });

  it('when sql/007 has run, then every old row and event is on board main, period all, and the old names still read them', async () => {
    const scores = await everywhere<Record<string, unknown>>("SELECT user_id, name, region, score, version, updated_at FROM board_scores WHERE board = 'main' AND period = 'all'");
    expect(scores.map((r) => num(r, 'score', 'version')).sort(byUser)).to.deep.equal([...rows].sort(byUser));
    const logged = await everywhere<Record<string, unknown>>(
      "SELECT user_id, version, region, op, delta, score, ts, request_id, created_at FROM board_score_events WHERE board = 'main' AND period = 'all'",
    );
    expect(logged.map((r) => num(r, 'version', 'delta', 'score')).sort(byUser)).to.deep.equal([...events].sort(byUser));
    // Readers written against 002 see the same rows under the old names.
    const old = await everywhere<Record<string, unknown>>('SELECT user_id, name, region, score, version, updated_at FROM leaderboard');
    expect(old.map((r) => num(r, 'score', 'version')).sort(byUser)).to.deep.equal([...rows].sort(byUser));
    const oldEvents = await everywhere<Record<string, unknown>>('SELECT user_id, version, region, op, delta, score, ts, request_id, created_at FROM score_events');
    expect(oldEvents.length).to.equal(events.length);
  });

  it('when sql/008 has run, then every row of every table a project owns is kept, as the default project’s', async () => {
    for (const t of TENANT_TABLES) {
      // Summed over the databases, by project.
      const got = new Map<string, number>();
      for (const r of await everywhere<{ p: string; n: number }>(`SELECT tenant_id || '/' || project_id AS p, count(*)::int AS n FROM ${t} GROUP BY 1`)) got.set(r.p, (got.get(r.p) ?? 0) + r.n);
      const n = before008.get(t)!;
      expect(n, `${t} was seeded`).to.be.greaterThan(0);
      expect([...got], t).to.deep.equal([['default/default', n]]);
    }
  });

  it('when sql/008 runs again, then it changes nothing', async () => {
    const infra = await getInfra();
    const text = await readFile(join(infra.repoRoot, 'sql', '008_tenancy.sql'), 'utf8');
    for (const url of new Set(topology.shards.map((s) => s.postgres))) await withDb(url, (c) => c.query(text));
    for (const t of TENANT_TABLES) {
      const got = await everywhere<{ n: number }>(`SELECT count(*)::int AS n FROM ${t} WHERE tenant_id = 'default' AND project_id = 'default'`);
      expect(got.reduce((a, r) => a + r.n, 0), t).to.equal(before008.get(t));
    }
  });

  it('when the services’ role reads the upgraded rows, then it sees them in the default project’s scope and not outside it', async () => {
    const url = serviceRoleUrl(topology.shards[0]!.postgres, undefined);
    await withDb(url, async (c) => {
      expect((await c.query('SELECT count(*)::int AS n FROM board_scores')).rows[0].n).to.equal(0);
      await c.query('BEGIN');
      await c.query("SELECT set_config('app.tenant_id', 'default', true), set_config('app.project_id', 'default', true)");
      expect((await c.query("SELECT count(*)::int AS n FROM period_archive WHERE board = 'oldweekly'")).rows[0].n).to.equal(2);
      expect((await c.query("SELECT id FROM boards WHERE id = 'oldweekly'")).rows).to.deep.equal([{ id: 'oldweekly' }]);
      await c.query('COMMIT');
    });
  });

  it('when sql/007 runs again, then it changes nothing', async () => {
    const infra = await getInfra();
    const text = await readFile(join(infra.repoRoot, 'sql', '007_main_board_tables.sql'), 'utf8');
    const count = async () => (await everywhere<{ n: number }>("SELECT count(*)::int AS n FROM board_score_events WHERE board = 'main'")).reduce((a, r) => a + r.n, 0);
    const before = await count();
    for (const url of new Set(topology.shards.map((s) => s.postgres))) await withDb(url, (c) => c.query(text));
    expect(await count()).to.equal(before);
  });

  describe('a stack started on the upgraded databases', () => {
    let svc: TestService;
    let api: Client;
    before(async () => {
      svc = await startService({ TOPOLOGY: topologyJson(topology) });
      api = new Client(svc.url);
      for (const s of topology.shards) await rebuildShard(svc.deps.router, svc.deps.stores.get(s.id), svc.deps.pools, DEFAULT_PROJECT, svc.deps.catalog.live(DEFAULT_PROJECT), async () => false);
    });
    after(async () => svc?.stop());

    it('when /top, /rank and /around are read, then they answer as the old rows say', async () => {
      await expectOldAnswers(api);
    });

    it('when /history is read, then it is the old events, newest first, field for field', async () => {
      for (const r of rows.slice(0, 20)) {
        const want = events
          .filter((e) => e.user_id === r.user_id)
          .sort((a, b) => b.version - a.version)
          .map((e) => ({ version: e.version, op: e.op, delta: e.delta, score: e.score, region: e.region, ts: e.ts.toISOString(), request_id: e.request_id }));
        const got = await api.get(`/history/${r.user_id}?limit=50`);
        expect(got.status).to.equal(200);
        expect(got.body).to.deep.equal({ user_id: r.user_id, events: want, next_before: null });
      }
    });
  });

  describe('a stack started on Redis in the old layout of main', () => {
    let svc: TestService | undefined;
    let api: Client;
    const prefix = `old${uniqueId('').replace(/[^a-z0-9]/gi, '').toLowerCase().slice(-8)}`;
    /** The old layout, as the service wrote it before main ran on the board engine. */
    const oldKeys = (shard: string) => ({ view: (v: string) => `${prefix}:{${shard}}:board:${v}`, user: (id: string) => `${prefix}:{${shard}}:user:${id}`, names: `${prefix}:{${shard}}:names` });
    before(async () => {
      await onShards(async (c, shard) => {
        const k = oldKeys(shard);
        for (const r of rows.filter((x) => router.homeShard(x.user_id, x.region).id === shard)) {
          const stored = r.score === 0 ? 0 : -r.score;
          await c.zAdd(k.view('GLOBAL'), { score: stored, value: r.user_id });
          if (r.region !== 'GLOBAL') await c.zAdd(k.view(r.region), { score: stored, value: r.user_id });
          await c.hSet(k.user(r.user_id), { user_id: r.user_id, name: r.name, region: r.region, score: String(r.score), version: String(r.version), updated_at: String(r.updated_at.getTime()) });
          await c.hSet(k.names, r.user_id, r.name);
        }
      });
      svc = await startService({ TOPOLOGY: topologyJson(topology), KEY_PREFIX: prefix });
      api = new Client(svc.url);
    });
    after(async () => svc?.stop());

    it('when /top, /rank and /around are read, then they answer as before the upgrade', async () => {
      await expectOldAnswers(api);
    });

    it('when the old keys are looked for, then they are gone, and the next write of a player takes the next version', async () => {
      const left = await onShards(async (c, shard) => {
        const k = oldKeys(shard);
        return [...(await c.keys(k.user('*'))), ...(await c.keys(k.view('*')))];
      });
      expect(left.flat()).to.deep.equal([]);
      const r = rows.find((x) => x.region === 'EU')!;
      const token = signToken({ userId: r.user_id, name: r.name, region: r.region }, svc!.config.token);
      const w = await api.post('/score/add', { delta: 1 }, { token });
      expect(w.body).to.deep.include({ score: r.score + 1, version: r.version + 1 });
      await api.post('/score/add', { delta: -1 }, { token });
    });

    it('when the service starts again on the converted shards, then nothing changes', async () => {
      const before = (await api.get('/top?region=GLOBAL&limit=1000')).body;
      await svc!.stop();
      svc = await startService({ TOPOLOGY: topologyJson(topology), KEY_PREFIX: prefix });
      api = new Client(svc.url);
      expect((await api.get('/top?region=GLOBAL&limit=1000')).body).to.deep.equal(before);
      const r = rows[0]!;
      expect((await api.get(`/rank/${r.user_id}`)).body).to.deep.equal(model.rank('GLOBAL', r.user_id));
    });
  });
  describe('a stack started on Redis in the layout before tenancy', () => {
    const services: TestService[] = [];
    let api: Client;
    let worker: Child | undefined;
    const prefix = `ten${uniqueId('').replace(/[^a-z0-9]/gi, '').toLowerCase().slice(-8)}`;
    /** Layout 2's names, spelled here as the service wrote them (no project in any of them). */
    const v2 = (shard: string) => {
      const base = `${prefix}:{${shard}}`;
      const period = (board: string, p: string) => ({ view: (v: string) => `${base}:b:${board}:${p}:z:${v}`, versions: `${base}:b:${board}:${p}:v`, meta: `${base}:b:${board}:${p}:meta` });
      return {
        base,
        names: `${base}:names`,
        regions: `${base}:regions`,
        period,
        idem: (user: string, key: string) => `${base}:idem:${user}:${key}`,
        userBucket: (user: string) => `${base}:bucket:user:${user}`,
        outbox: `${base}:outbox`,
        outboxIndex: `${base}:outbox:index`,
        liveChannels: `${base}:live:channels`,
        liveSpecs: `${base}:live:specs`,
        layout: `${base}:layout`,
      };
    };
    let board = '';
    const rule = parseReset('daily');
    const today = periodAt(rule, Date.now());
    const periods = [today.id, previousPeriod(rule, today)!.id];
    /** Entries of the daily board: two per shard and period, with metadata. */
    const entries: { user_id: string; shard: string; region: string; period: string; score: number; metadata: { lap: number } }[] = [];
    /** Events written to Redis and the outbox but not yet sent: one per shard, on today's period. */
    const pending: { user_id: string; shard: string; region: string; score: number }[] = [];
    /** Players of the old rows (known once the outer before has made them): one with an idempotency record, one with an empty bucket. */
    const idem = { user: '', key: 'upgrade-key-1', value: 5 };
    let limited = '';
    const oldChannel = 'top/main/all/GLOBAL/10';
    const oldSpec = JSON.stringify({ kind: 'top', board: 'main', period: 'all', view: 'GLOBAL', limit: 10 });


    before(async () => {
      idem.user = rows.find((r) => r.region === 'EU')!.user_id;
      limited = rows.find((r) => r.region === 'NA')!.user_id;
      // The board's definition is the control plane's (Postgres), whatever the Redis layout.
      const setup = await startService({ TOPOLOGY: topologyJson(topology), KEY_PREFIX: `${prefix}x` });
      try {
        const key = (await new ApiKeysRepo(setup.deps.pools, setup.deps.router.shards[0]!.id).create('upgrade')).key;
        board = uniqueId('upg').toLowerCase().replace(/[^a-z0-9_-]/g, '-').slice(0, 60);
        const r = await new Client(setup.url).request('POST', '/admin/boards', { body: { id: board, reset: 'daily', order: 'desc', operator: 'set' }, headers: { 'x-api-key': key } });
        expect(r.status, JSON.stringify(r.body)).to.equal(201);
      } finally {
        await setup.stop();
      }
      const regionOf: Record<string, string> = { na: 'NA', eu: 'EU', asia: 'ASIA' };
      await onShards(async (c, shard) => {
        const k = v2(shard);
        const main = k.period('main', 'all');
        for (const r of rows.filter((x) => router.homeShard(x.user_id, x.region).id === shard)) {
          const stored = r.score === 0 ? 0 : -r.score;
          await c.zAdd(main.view('GLOBAL'), { score: stored, value: r.user_id });
          if (r.region !== 'GLOBAL') await c.zAdd(main.view(r.region), { score: stored, value: r.user_id });
          await c.hSet(main.versions, r.user_id, String(r.version));
          await c.hSet(k.names, r.user_id, r.name);
          await c.hSet(k.regions, r.user_id, r.region);
        }
        const region = regionOf[shard] ?? 'GLOBAL';
        for (const [pi, p] of periods.entries()) {
          const b = k.period(board, p);
          for (let i = 0; i < 2; i++) {
            const e = { user_id: `t-${shard}-${i}`, shard, region, period: p, score: 100 * (pi + 1) + 10 * i + shard.length, metadata: { lap: i + pi * 10 } };
            entries.push(e);
            await c.zAdd(b.view('GLOBAL'), { score: -e.score, value: e.user_id });
            await c.zAdd(b.view(region), { score: -e.score, value: e.user_id });
            await c.hSet(b.versions, e.user_id, '1');
            await c.hSet(b.meta, e.user_id, JSON.stringify(e.metadata));
            await c.hSet(k.names, e.user_id, `Name ${e.user_id}`);
            await c.hSet(k.regions, e.user_id, region);
          }
        }
        // A write applied in Redis whose event the relay had not sent yet (an event of before tenancy: no project in it or in its id).
        const p = { user_id: `pend-${shard}`, shard, region, score: 4000 + shard.length };
        pending.push(p);
        const b = k.period(board, today.id);
        await c.zAdd(b.view('GLOBAL'), { score: -p.score, value: p.user_id });
        await c.zAdd(b.view(region), { score: -p.score, value: p.user_id });
        await c.hSet(b.versions, p.user_id, '1');
        await c.hSet(k.names, p.user_id, `Name ${p.user_id}`);
        await c.hSet(k.regions, p.user_id, region);
        const id = `${board}/${today.id}/${p.user_id}#1`;
        const event = { user_id: p.user_id, name: `Name ${p.user_id}`, region, op: 'set', delta: p.score, score: p.score, version: 1, ts: Date.now(), request_id: 'before-upgrade', board, period: today.id, member: p.user_id };
        await c.hSet(k.outbox, id, JSON.stringify(event));
        await c.zAdd(k.outboxIndex, { score: Date.now(), value: id });
        // A live registration (the shard's registry keeps its name).
        await c.zAdd(k.liveChannels, { score: Date.now(), value: oldChannel });
        await c.hSet(k.liveSpecs, oldChannel, oldSpec);
        if (router.homeShard(idem.user, 'EU').id === shard) {
          const fingerprint = createHash('sha256').update(`update\u0000${idem.value}`).digest('base64url').slice(0, 22);
          const response = { ok: true, board: 'main', period: 'all', user_id: idem.user, region: 'EU', score: 777, changed: true, version: 99, rank: { region: 1, global: 1 } };
          await c.set(k.idem(idem.user, idem.key), JSON.stringify({ fingerprint, response }), { EX: 3600 });
        }
        if (router.homeShard(limited, 'NA').id === shard) {
          // An empty bucket: the player has used their writes of the window.
          await c.hSet(k.userBucket(limited), { tokens: '0.000000', ts: String(Date.now()) });
          await c.pExpire(k.userBucket(limited), 1_200_000);
        }
        await c.set(k.layout, '2');
      });
      // Two replicas start on the same shards at once: each converts, neither loses what the other moved.
      const env = { TOPOLOGY: topologyJson(topology), KEY_PREFIX: prefix, USER_RATE_LIMIT_COUNT: '5', USER_RATE_LIMIT_WINDOW_MS: '600000' };
      services.push(...(await Promise.all([startService(env), startService(env)])));
      api = new Client(services[0]!.url);
      const infra = await getInfra();
      worker = spawnNode('worker-service/src/index.ts', infra.env({ TOPOLOGY: topologyJson(topology), KEY_PREFIX: prefix, LOG_LEVEL: 'warn', BATCH_MAX_WAIT_MS: '20' }));
    });
    after(async () => {
      await worker?.stop();
      for (const s of services) await s.stop();
    });

    it('when /top, /rank and /around of main are read, then they answer as before the upgrade, on either replica', async () => {
      await expectOldAnswers(api);
      await expectOldAnswers(new Client(services[1]!.url));
    });

    it("when a board's periods are read, then each has its entries with their metadata", async () => {
      for (const p of periods) {
        const want = entries.filter((e) => e.period === p).map((e) => ({ user_id: e.user_id, score: e.score, metadata: e.metadata }));
        if (p === today.id) want.push(...pending.map((e) => ({ user_id: e.user_id, score: e.score, metadata: null as unknown as { lap: number } })));
        want.sort((a, b) => b.score - a.score || (a.user_id < b.user_id ? -1 : 1));
        const got = await api.get(`/boards/${board}/top?region=GLOBAL&limit=100&period=${p}`);
        expect(got.status, JSON.stringify(got.body)).to.equal(200);
        expect(got.body.rows.map((r: { user_id: string; score: number; metadata: unknown }) => ({ user_id: r.user_id, score: r.score, metadata: r.metadata })), p).to.deep.equal(want);
      }
    });

    it('when the keys are looked at, then no project key of the old layout is left, the layout is the current one, and the registry of live channels is as it was', async () => {
      const left = await onShards(async (c, shard) => {
        const keys = shardKeys(shard, prefix);
        expect(await c.get(keys.layout)).to.equal(LAYOUT_VERSION);
        expect(await c.hGet(keys.live.specs, oldChannel)).to.equal(oldSpec);
        expect(await c.exists(keys.project(DEFAULT_PROJECT).names)).to.equal(1);
        return (await c.keys(`${prefix}:{${shard}}:*`)).filter((name) => upgradedKeyName(keys, name) !== undefined);
      });
      expect(left.flat()).to.deep.equal([]);
    });

    it('when a write is retried with an Idempotency-Key of before the upgrade, then the stored answer comes back', async () => {
      const token = signToken({ userId: idem.user, name: 'x', region: 'EU' }, services[0]!.config.token);
      const r = await api.request('POST', '/score/update', { body: { score: idem.value }, token, headers: { 'idempotency-key': idem.key } });
      expect(r.body).to.deep.include({ score: 777, version: 99 });
    });

    it("when a player whose bucket was empty before the upgrade writes, then the bucket still refuses", async () => {
      const r = rows.find((x) => x.user_id === limited)!;
      const token = signToken({ userId: r.user_id, name: r.name, region: r.region }, services[0]!.config.token);
      const w = await api.post('/score/add', { delta: 1 }, { token });
      expect([w.status, w.body.error]).to.deep.equal([429, 'rate_limited']);
    });

    it('when the worker runs, then the events the outbox held before the upgrade are sent and persisted, and the outbox empties', async () => {
      const db = (shard: string) => topology.shards.find((s) => s.id === shard)!.postgres;
      for (const p of pending) {
        await eventually(`${p.user_id} persisted`, () =>
          withDb(db(p.shard), async (c) => (await c.query('SELECT 1 FROM board_scores WHERE board = $1 AND period = $2 AND user_id = $3 AND score = $4', [board, today.id, p.user_id, p.score])).rowCount === 1),
        );
      }
      await eventually('outboxes emptied', async () => (await onShards((c, shard) => c.hLen(v2(shard).outbox))).every((n) => n === 0), 30_000);
    });

    it('when the conversion runs again (the marker lost), then it finds nothing to move', async () => {
      const store = services[0]!.deps.stores.get(topology.shards[0]!.id);
      await store.client.set(store.keys.layout, '2');
      const again = await upgradeLayout(store, router.regions);
      expect(again).to.deep.include({ current: false, views: 0, players: 0, renamed: 0, kept: 0 });
      expect(await store.client.get(store.keys.layout)).to.equal(LAYOUT_VERSION);
    });
  });
});
