/**
 * The whole load-balanced stack (nginx → 3 api-gateways → 3 leaderboard-service
 * replicas → 3 Redis shards; worker-service → Postgres), started once with
 * startStack, driven only through nginx: the quick-start flow, load spread,
 * a replica and a gateway killed under traffic, token checks at the gateway,
 * and finally Postgres converging to Redis for every player written here.
 *
 * The tests share the stack and run in order; each registers its own players.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import type { Identity } from '@lb/common/platform';
import { findBinary } from '@lb/devtools/infra';
import { uniqueId } from '@lb/devtools/testing';
import { startStack, type Stack } from '../scripts/stack/stack.js';
import {
  answeringGateway,
  call,
  eventually,
  expiredToken,
  forgedToken,
  isErrorShape,
  linesWith,
  NoAnswer,
  post,
  runPool,
  StackStores,
  triedGateways,
  unsignedToken,
  type Reply,
} from './support/e2e.js';

const missing = (['redis-server', 'postgres', 'initdb', 'nginx'] as const).filter((b) => !findBinary(b));

const PASSWORD = 'correct horse battery';

interface Player extends Identity {
  token: string;
}

/** What one request of a traffic stream got. */
interface Outcome {
  what: string;
  sentAt: number;
  status: number | 'no answer';
  body: unknown;
  upstream: string | null;
  error?: string;
}

/** One score write of a stream and, if it failed, its retry. */
interface WriteRecord extends Outcome {
  player: Player;
  key: string;
  delta: number;
  retry?: Reply;
}

describe('the load-balanced stack, end to end through nginx', function () {
  this.timeout(120_000);
  let dataDir: string | undefined;
  let stack: Stack;
  let stores: StackStores | undefined;
  const stackLog: string[] = [];
  /** Every player this file writes, for the final Redis = Postgres check. */
  const written: { user_id: string; region: string }[] = [];
  let quickStartAlice: string | undefined;

  before(async function () {
    if (missing.length > 0) {
      console.log(`      (skipped: ${missing.join(', ')} not installed; npm test installs them via scripts/bootstrap.mjs)`);
      this.skip();
    }
    this.timeout(180_000);
    dataDir = mkdtempSync(join(tmpdir(), 'lb-e2e-'));
    stack = await startStack({
      dataDir,
      // The sources: these tests must not depend on a fresh build (test/build.e2e.test.ts runs the compiled services).
      code: 'source',
      ports: 'ephemeral',
      nginxAccessLog: true,
      postgresFast: true,
      env: { LOG_LEVEL: 'warn', USER_RATE_LIMIT_COUNT: '100000', ACCESS_LOG: 'true' },
      envFor: { gateway: { UPSTREAM_COOLOFF_MS: '1000', PROBE_INTERVAL_MS: '200', UPSTREAM_TIMEOUT_MS: '2000' } },
      log: (l) => stackLog.push(l),
    });
    stores = await StackStores.open(stack.topology);
  });

  after(async function () {
    this.timeout(90_000);
    await stores?.close();
    await stack?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const url = (path: string): string => `${stack.url}${path}`;
  const hostOf = (base: string): string => new URL(base).host;
  const replicaName = (serviceUrl: string): string => `leaderboard-service-${stack.serviceUrls.indexOf(serviceUrl) + 1}`;

  /** Registers a player through nginx and keeps it for the final check. */
  async function register(prefix: string, name: string, region: string, initialScore?: number): Promise<Player> {
    const userId = uniqueId(prefix);
    const body = { user_id: userId, name, region, password: PASSWORD, ...(initialScore !== undefined && { initialScore }) };
    const r = await post(url('/auth/register'), body);
    expect(r.status, JSON.stringify(r.body)).to.equal(201);
    written.push({ user_id: userId, region });
    return { userId, name, region, token: r.body.token as string };
  }

  /** One request of a stream: never throws, records what came back. */
  async function attempt(what: string, send: () => Promise<Reply>): Promise<Outcome> {
    const sentAt = Date.now();
    try {
      const r = await send();
      return { what, sentAt, status: r.status, body: r.body, upstream: r.headers.get('x-upstream') };
    } catch (e) {
      if (!(e instanceof NoAnswer)) throw e;
      return { what, sentAt, status: 'no answer', body: undefined, upstream: null, error: e.message };
    }
  }

  const addScore = (p: Player, delta: number, key: string): Promise<Reply> =>
    post(url('/score/add'), { delta }, { token: p.token, headers: { 'idempotency-key': key } });

  it('when players register, log in and write as in the quick start, then top, rank and around answer exactly on a region and on GLOBAL', async () => {
    const alice = uniqueId('alice');
    const bob = uniqueId('bob');
    const gina = uniqueId('gina');
    quickStartAlice = alice;

    const regAlice = await post(url('/auth/register'), { user_id: alice, name: 'Alice', region: 'EU', password: PASSWORD });
    expect(regAlice.status, JSON.stringify(regAlice.body)).to.equal(201);
    expect(regAlice.body.user).to.deep.equal({ user_id: alice, name: 'Alice', region: 'EU', score: 0 });
    expect(regAlice.body.token).to.match(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    const regBob = await post(url('/auth/register'), { user_id: bob, name: 'Bob', region: 'EU', password: PASSWORD, initialScore: 100 });
    expect(regBob.body).to.deep.include({ user: { user_id: bob, name: 'Bob', region: 'EU', score: 100 } });
    const regGina = await post(url('/auth/register'), { user_id: gina, name: 'Gina', region: 'GLOBAL', password: PASSWORD, initialScore: 125 });
    expect(regGina.body).to.deep.include({ user: { user_id: gina, name: 'Gina', region: 'GLOBAL', score: 125 } });
    written.push({ user_id: alice, region: 'EU' }, { user_id: bob, region: 'EU' }, { user_id: gina, region: 'GLOBAL' });
    const again = await post(url('/auth/register'), { user_id: alice, name: 'Alice', region: 'NA', password: PASSWORD });
    expect(again.status).to.equal(409);
    expect(again.body.error).to.equal('user_exists');

    const wrong = await post(url('/auth/login'), { user_id: alice, password: 'not her password' });
    expect(wrong.status).to.equal(401);
    expect(wrong.body.error).to.equal('invalid_credentials');
    const login = await post(url('/auth/login'), { user_id: alice, password: PASSWORD });
    expect(login.status).to.equal(200);
    expect(login.body.user).to.deep.equal({ user_id: alice, name: 'Alice', region: 'EU', score: 0 });
    const token = login.body.token as string;

    // Registration put Alice on the boards with 0 (version 1): create changes nothing and answers her card.
    const created = await post(url('/score/create'), { region: 'EU', initialScore: 10 }, { token });
    expect(created.status, JSON.stringify(created.body)).to.equal(200);
    expect(created.body).to.deep.equal({ ok: true, user_id: alice, region: 'EU', score: 0, version: 1, rank: { region: 2, global: 3 } });
    const updated = await post(url('/score/update'), { score: 120 }, { token, headers: { 'idempotency-key': `${alice}-update-1` } });
    expect(updated.body).to.deep.equal({ ok: true, user_id: alice, region: 'EU', score: 120, version: 2, rank: { region: 1, global: 2 } });
    const added = await post(url('/score/add'), { delta: 5 }, { token });
    // 125 ties with Gina: competition ranking gives both rank 1.
    expect(added.body).to.deep.equal({ ok: true, user_id: alice, region: 'EU', score: 125, version: 3, rank: { region: 1, global: 1 } });
    const bobLogin = await post(url('/auth/login'), { user_id: bob, password: PASSWORD });
    const bobAdd = await post(url('/score/add'), { delta: -30 }, { token: bobLogin.body.token });
    expect(bobAdd.body).to.deep.equal({ ok: true, user_id: bob, region: 'EU', score: 70, version: 2, rank: { region: 2, global: 3 } });

    const row = (rank: number, user_id: string, name: string, score: number) => ({ rank, user_id, name, score });
    const topEu = await call(url('/top?region=EU&limit=10'));
    expect(topEu.body).to.deep.equal({ region: 'EU', total: 2, rows: [row(1, alice, 'Alice', 125), row(2, bob, 'Bob', 70)] });
    const topGlobal = await call(url('/top?region=GLOBAL&limit=10'));
    expect(topGlobal.body).to.deep.equal({
      region: 'GLOBAL',
      total: 3,
      rows: [row(1, alice, 'Alice', 125), row(1, gina, 'Gina', 125), row(3, bob, 'Bob', 70)],
    });

    const rankAliceEu = await call(url(`/rank/${alice}?region=eu`));
    expect(rankAliceEu.body).to.deep.equal({
      found: true, user_id: alice, name: 'Alice', region: 'EU', board: 'EU', score: 125, rank: 1, total: 2, percentile: 50,
    });
    const rankGina = await call(url(`/rank/${gina}?region=GLOBAL`));
    expect(rankGina.body).to.deep.equal({
      found: true, user_id: gina, name: 'Gina', region: 'GLOBAL', board: 'GLOBAL', score: 125, rank: 1, total: 3, percentile: 33.33,
    });
    const rankBob = await call(url(`/rank/${bob}?region=GLOBAL`));
    expect(rankBob.body).to.deep.include({ board: 'GLOBAL', score: 70, rank: 3, total: 3, percentile: 0 });
    const ginaOnEu = await call(url(`/rank/${gina}?region=EU`));
    expect(ginaOnEu.status).to.equal(404);
    expect(ginaOnEu.body).to.include({ error: 'user_not_found', found: false, user_id: gina, board: 'EU' });

    const aroundBob = await call(url(`/around/${bob}?region=EU&range=5`));
    expect(aroundBob.body).to.deep.equal({ region: 'EU', self: row(2, bob, 'Bob', 70), around: [row(1, alice, 'Alice', 125)] });
    const aroundGina = await call(url(`/around/${gina}?region=GLOBAL&range=1`));
    expect(aroundGina.body).to.deep.equal({
      region: 'GLOBAL',
      self: row(1, gina, 'Gina', 125),
      around: [row(1, alice, 'Alice', 125), row(3, bob, 'Bob', 70)],
    });
  });

  it('when 60 reads go through nginx, then every gateway and every replica serves some, and X-Served-By agrees with X-Upstream', async () => {
    const gateways = new Set<string>();
    const replicas = new Set<string>();
    for (let i = 0; i < 60; i++) {
      const r = await call(url(i % 2 === 0 ? '/top?region=GLOBAL&limit=3' : '/top?region=EU&limit=3'));
      expect(r.status).to.equal(200);
      const gateway = r.headers.get('x-upstream-addr')!;
      const replica = r.headers.get('x-upstream')!;
      expect(gateway).to.match(/^127\.0\.0\.1:\d+$/);
      expect(stack.serviceUrls).to.include(replica);
      expect(r.headers.get('x-served-by')).to.equal(replicaName(replica));
      gateways.add(gateway);
      replicas.add(replica);
    }
    expect([...gateways].sort()).to.deep.equal(stack.gatewayUrls.map(hostOf).sort());
    expect([...replicas].sort()).to.deep.equal([...stack.serviceUrls].sort());
  });

  it('when a replica is killed under a stream of reads and writes, then no read fails, writes fail only cleanly, idempotent retries apply each write exactly once, and the restarted replica is re-admitted', async function () {
    this.timeout(90_000);
    const victim = stack.serviceUrls[1]!;
    const players = [
      await register('kill-na', 'Kill NA', 'NA', 1000),
      await register('kill-eu', 'Kill EU', 'EU', 1000),
      await register('kill-asia', 'Kill Asia', 'ASIA', 1000),
      await register('kill-global', 'Kill Global', 'GLOBAL', 1000),
    ];
    for (const p of players) expect(await stores!.redisUser(p.userId, p.region)).to.deep.equal({ score: 1000, version: 1 });

    const reads: Outcome[] = [];
    const writes: WriteRecord[] = [];
    let stop = false;
    const loop = async (lane: number): Promise<void> => {
      const p = players[lane % players.length]!;
      for (let n = 0; !stop; n++) {
        reads.push(await attempt(`GET /top ${p.region}`, () => call(url(`/top?region=${p.region}&limit=5`))));
        reads.push(await attempt(`GET /rank ${p.userId}`, () => call(url(`/rank/${p.userId}?region=GLOBAL`))));
        const key = `kill-${lane}-${n}-${randomUUID()}`;
        const delta = 1 + ((lane + n) % 9);
        writes.push({ ...(await attempt(`POST /score/add ${key}`, () => addScore(p, delta, key))), player: p, key, delta });
      }
    };
    const lanes = Array.from({ length: 8 }, (_, i) => loop(i));
    await sleep(1500);
    const killStart = Date.now();
    await stack.kill('leaderboard-service-2');
    const killedAt = Date.now();
    await sleep(4500);
    stop = true;
    await Promise.all(lanes);

    const all = [...reads, ...writes];
    expect(all.filter((o) => o.sentAt < killStart && o.upstream === victim).length, 'the victim served traffic before the kill').to.be.greaterThan(0);
    expect(all.filter((o) => o.sentAt > killedAt && o.upstream === victim), 'answers from a dead replica').to.deep.equal([]);
    expect(reads.filter((o) => o.status !== 200), 'failed reads').to.deep.equal([]);
    expect(writes.filter((w) => w.status === 'no answer').map((w) => w.error), 'writes without an answer').to.deep.equal([]);
    const unclean = writes.filter((w) => w.status !== 200 && !(typeof w.status === 'number' && w.status >= 400 && isErrorShape(w.body)));
    expect(unclean.map((w) => ({ status: w.status, body: w.body })), 'writes that failed without a JSON error').to.deep.equal([]);

    // While it is down, every gateway has taken it out of rotation (each one met a refused connection).
    for (const g of stack.gatewayUrls) {
      const h = await call(`${g}/health`);
      expect(h.body.upstreams.find((u: { url: string }) => u.url === victim), g).to.include({ healthy: false });
    }

    await stack.restart('leaderboard-service-2');
    const servedBy = async (): Promise<string | null> => (await call(url('/top?region=NA&limit=1'))).headers.get('x-upstream');
    await eventually(async () => ((await servedBy()) === victim ? true : undefined), 20_000, 'the restarted replica answering through nginx');
    await eventually(async () => {
      for (const g of stack.gatewayUrls) {
        const h = await call(`${g}/health`);
        if (!h.body.upstreams.some((u: { url: string; healthy: boolean }) => u.url === victim && u.healthy)) return undefined;
      }
      return true;
    }, 20_000, 'every gateway listing the restarted replica as healthy');

    // Re-send every failed write with its key; learn first whether it had been applied.
    const failed = writes.filter((w) => w.status !== 200);
    let appliedAnyway = 0;
    for (const w of failed) {
      const rec = await stores!.idempotencyRecord(w.player.userId, w.player.region, w.key);
      w.retry = await addScore(w.player, w.delta, w.key);
      expect(w.retry.status, JSON.stringify(w.retry.body)).to.equal(200);
      if (rec) {
        appliedAnyway++;
        expect(w.retry.body.version, 'a replayed write answers its first version').to.equal(rec.version);
      }
    }
    // A key that succeeded, sent again, answers the same card and changes nothing.
    for (const w of writes.filter((x) => x.status === 200).filter((_, i) => i % 10 === 0)) {
      const again = await addScore(w.player, w.delta, w.key);
      expect(again.body).to.deep.equal(w.body);
    }

    for (const p of players) {
      const mine = writes.filter((w) => w.player === p);
      const versions = mine.map((w) => (w.status === 200 ? (w.body as { version: number }).version : (w.retry!.body.version as number)));
      const expectedVersions = mine.map((_, i) => 2 + i);
      expect([...versions].sort((a, b) => a - b), `versions of ${p.userId}`).to.deep.equal(expectedVersions);
      const sum = mine.reduce((s, w) => s + w.delta, 0);
      expect(await stores!.redisUser(p.userId, p.region), p.userId).to.deep.equal({ score: 1000 + sum, version: 1 + mine.length });
    }
    const codes = failed.map((w) => `${w.status} ${(w.body as { error?: string })?.error}, sent ${w.sentAt - killStart} ms after the kill began`);
    console.log(`      ${reads.length} reads, ${writes.length} writes; ${failed.length} failed [${codes.join('; ')}], ${appliedAnyway} of those applied`);
  });

  it('when a gateway is killed, then a burst of reads and keyed writes through nginx all succeed on the others, and the restarted gateway serves again', async function () {
    this.timeout(60_000);
    const victim = hostOf(stack.gatewayUrls[0]!);
    const p = await register('gw-kill', 'Gateway Kill', 'NA', 500);
    await stack.kill('api-gateway-1');

    const deltas = Array.from({ length: 30 }, (_, i) => 1 + (i % 7));
    const tasks: (() => Promise<Reply>)[] = [];
    deltas.forEach((d, i) => {
      tasks.push(() => call(url(i % 2 === 0 ? '/top?region=NA&limit=5' : `/rank/${p.userId}?region=GLOBAL`)));
      tasks.push(() => addScore(p, d, `gw-${i}-${randomUUID()}`));
    });
    const replies = await runPool(tasks, 6);
    expect(replies.filter((r) => r.status !== 200).map((r) => r.body), 'failed requests').to.deep.equal([]);
    expect(replies.filter((r) => answeringGateway(r.headers.get('x-upstream-addr')) === victim).length, 'answers from the dead gateway').to.equal(0);
    // nginx may still try the dead gateway first (until max_fails marks it down); it then says so in the list.
    const triedDeadFirst = replies.filter((r) => triedGateways(r.headers.get('x-upstream-addr')).includes(victim)).length;
    const versions = replies.filter((_, i) => i % 2 === 1).map((r) => r.body.version as number);
    expect(versions.sort((a, b) => a - b)).to.deep.equal(deltas.map((_, i) => 2 + i));
    expect(await stores!.redisUser(p.userId, p.region)).to.deep.equal({ score: 500 + deltas.reduce((s, d) => s + d, 0), version: 31 });

    await stack.restart('api-gateway-1');
    await eventually(
      async () => (answeringGateway((await call(url('/top?region=NA&limit=1'))).headers.get('x-upstream-addr')) === victim ? true : undefined),
      20_000,
      'the restarted gateway answering through nginx',
    );
    console.log(`      ${replies.length} requests with api-gateway-1 down; nginx tried it first and moved on for ${triedDeadFirst}`);
  });

  it('when a write carries a forged, expired or alg=none token, then the gateway answers 401 invalid_token and no replica ever sees it', async () => {
    const p = await register('tokens', 'Tokens', 'ASIA', 10);
    const who: Identity = { userId: p.userId, name: p.name, region: p.region };
    const bad = [
      { kind: 'forged', token: forgedToken(who) },
      { kind: 'expired', token: expiredToken(who, stack.jwtSecret) },
      { kind: 'alg-none', token: unsignedToken(who) },
    ].map((b) => ({ ...b, rid: `e2e-${b.kind}-${randomUUID()}` }));

    for (const b of bad) {
      const r = await post(url('/score/add'), { delta: 1000 }, { token: b.token, headers: { 'x-request-id': b.rid } });
      expect(r.status, b.kind).to.equal(401);
      expect(r.body.error, b.kind).to.equal('invalid_token');
      expect(isErrorShape(r.body), b.kind).to.equal(true);
      expect(r.headers.get('x-upstream'), b.kind).to.equal('gateway');
      expect(r.headers.get('x-request-id'), b.kind).to.equal(b.rid);
    }
    const goodRid = `e2e-valid-${randomUUID()}`;
    const good = await post(url('/score/add'), { delta: 1 }, { token: p.token, headers: { 'x-request-id': goodRid } });
    expect(good.status, JSON.stringify(good.body)).to.equal(200);
    expect(good.body).to.include({ score: 11, version: 2 });
    const servedBy = good.headers.get('x-upstream')!;
    expect(stack.serviceUrls).to.include(servedBy);

    const replicaLogs = stack.serviceUrls.map((_, i) => stack.component(`leaderboard-service-${i + 1}`).logFile);
    const gatewayLogs = stack.gatewayUrls.map((_, i) => stack.component(`api-gateway-${i + 1}`).logFile);
    const logsWith = (files: string[], rid: string) => files.filter((f) => linesWith(f, rid).length > 0);
    // Log lines reach the files asynchronously: wait until the valid request's line is there.
    const withGood = await eventually(async () => {
      const found = logsWith(replicaLogs, goodRid);
      return found.length > 0 ? found : undefined;
    }, 10_000, 'the valid request in a replica log');
    expect(withGood).to.deep.equal([stack.component(replicaName(servedBy)).logFile]);
    for (const b of bad) {
      // The ids did reach the gateways' access logs, so searching for them is meaningful...
      await eventually(async () => (logsWith(gatewayLogs, b.rid).length === 1 ? true : undefined), 10_000, `${b.kind} in a gateway log`);
      // ...but no replica ever logged them.
      expect(logsWith(replicaLogs, b.rid), b.kind).to.deep.equal([]);
    }
    expect(await stores!.redisUser(p.userId, p.region)).to.deep.equal({ score: 11, version: 2 });
  });

  it('when the streams have stopped and the queues drained, then Postgres equals Redis for every player written, with each version logged once', async function () {
    this.timeout(90_000);
    expect(written.length).to.be.greaterThan(0);
    await eventually(async () => ((await stores!.drained()) ? true : undefined), 60_000, 'every outbox and queue drained');
    expect(await stores!.failedJobs()).to.equal(0);
    expect(await stores!.compareRedisWithPostgres(written)).to.deep.equal([]);

    if (quickStartAlice) {
      const h = await call(url(`/history/${quickStartAlice}`));
      expect(h.status).to.equal(200);
      const events = (h.body.events as Array<Record<string, unknown>>).map(({ version, op, delta, score, region }) => ({
        version, op, delta, score, region,
      }));
      expect(events).to.deep.equal([
        { version: 3, op: 'add', delta: 5, score: 125, region: 'EU' },
        { version: 2, op: 'update', delta: 120, score: 120, region: 'EU' },
        { version: 1, op: 'register', delta: 0, score: 0, region: 'EU' },
      ]);
      expect(h.body.next_before).to.equal(null);
    }
    // Every kill in this file was deliberate: none may show up as a crash.
    expect(stackLog.filter((l) => l.includes('exited unexpectedly'))).to.deep.equal([]);
  });
});
