/**
 * Fault isolation and hardening of the whole stack, driven through nginx as a
 * client and an unlucky operator would: a Redis shard killed under load in
 * every region (and brought back by the supervisor), writes whose GLOBAL rank
 * cannot be counted, login floods, forged X-Forwarded-For, stalled bodies,
 * nginx's own errors, and input that cannot be stored.
 *
 * Each test is a distinct client address (127.0.0.0/8 all reaches nginx on
 * 127.0.0.1), so the per-IP limits of one do not spill into another.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { findBinary } from '@lb/devtools/infra';
import { uniqueId } from '@lb/devtools/testing';
import { startStack, type Stack } from '../scripts/stack/stack.js';
import { callFrom, closeCallFromAgents, eventually, NoAnswer, StackStores, type Reply } from './support/e2e.js';

const missing = (['redis-server', 'postgres', 'initdb', 'nginx'] as const).filter((b) => !findBinary(b));
const PASSWORD = 'correct horse battery';
/** Read limit per client address and gateway process in this stack. */
const READS_PER_MINUTE = 300;
/** The least time between two requests of one load lane of the shard-kill test: at most 60,000 / 250 = 240 a minute. */
const MIN_LANE_GAP_MS = 250;

interface Player {
  userId: string;
  region: string;
  /** The shard holding the player's entry. */
  home: string;
  token: string;
}

/** One request of the load and what came back. */
interface Outcome {
  op: string;
  /** The request cannot be answered without the killed shard. */
  needsKilled: boolean;
  sentAt: number;
  status: number | 'no answer';
  body: any;
  retryAfter: string | null;
  /** Score writes: who and the key, to account for every acknowledged delta. */
  write?: { player: Player; key: string };
}

describe('fault isolation and hardening, end to end through nginx', function () {
  this.timeout(180_000);
  let dataDir: string | undefined;
  let stack: Stack;
  let stores: StackStores | undefined;
  const stackLog: string[] = [];

  before(async function () {
    if (missing.length > 0) {
      console.log(`      (skipped: ${missing.join(', ')} not installed; npm test installs them via scripts/bootstrap.mjs)`);
      this.skip();
    }
    dataDir = mkdtempSync(join(tmpdir(), 'lb-hard-'));
    stack = await startStack({
      dataDir,
      // The sources: these tests must not depend on a fresh build (test/build.e2e.test.ts runs the compiled services).
      code: 'source',
      ports: 'ephemeral',
      postgresFast: true,
      env: {
        LOG_LEVEL: 'warn',
        ACCESS_LOG: 'false',
        USER_RATE_LIMIT_COUNT: '100000',
        REDIS_COMMAND_TIMEOUT_MS: '1000',
        BODY_TIMEOUT_MS: '1500',
        LOGIN_USER_MAX_FAILS: '5',
        LOGIN_FAIL_WINDOW_S: '2',
        READ_RATE_LIMIT_COUNT: String(READS_PER_MINUTE),
        READ_RATE_LIMIT_WINDOW_MS: '60000',
      },
      envFor: { gateway: { UPSTREAM_COOLOFF_MS: '1000', PROBE_INTERVAL_MS: '200' } },
      log: (l) => stackLog.push(l),
    });
    stores = await StackStores.open(stack.topology);
  });

  after(async function () {
    this.timeout(90_000);
    closeCallFromAgents();
    await stores?.close();
    await stack?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const url = (path: string): string => `${stack.url}${path}`;
  const json = (body: unknown, token?: string, extra: Record<string, string> = {}) => ({
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token && { authorization: `Bearer ${token}` }), ...extra },
    body: JSON.stringify(body),
  });

  async function register(from: string, region: string, prefix: string): Promise<Player> {
    const userId = uniqueId(prefix);
    const r = await callFrom(from, url('/auth/register'), json({ user_id: userId, name: prefix, region, password: PASSWORD }));
    expect(r.status, JSON.stringify(r.body)).to.equal(201);
    return { userId, region, home: stores!.router.homeShard(userId, region).id, token: r.body.token as string };
  }

  it('when one Redis shard is killed under load in every region, then only requests that need it fail, with a clean 503, nothing acknowledged is lost, and all is 200 again within 5 s of its return', async () => {
    const killed = 'na';
    const from = (lane: number) => `127.0.1.${lane + 1}`;
    const players: Player[] = [];
    for (const region of ['NA', 'EU', 'ASIA', 'GLOBAL']) for (let i = 0; i < 6; i++) players.push(await register('127.0.1.100', region, `load-${region}`));
    const regional = players.filter((p) => p.region !== 'GLOBAL');

    const outcomes: Outcome[] = [];
    let stopAt = Number.POSITIVE_INFINITY;
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
    async function send(lane: number, op: string, needsKilled: boolean, path: string, init?: ReturnType<typeof json>, write?: Outcome['write']) {
      const sentAt = Date.now();
      let r: Reply | undefined;
      try {
        r = await callFrom(from(lane), url(path), init);
      } catch (e) {
        if (!(e instanceof NoAnswer)) throw e;
      }
      outcomes.push({ op, needsKilled, sentAt, status: r?.status ?? 'no answer', body: r?.body, retryAfter: r?.headers.get('retry-after') ?? null, ...(write && { write }) });
    }
    async function lane(n: number): Promise<void> {
      while (Date.now() < stopAt) {
        // Paced so that a lane's reads stay under READS_PER_MINUTE (per address) even if every one of them
        // reached the same gateway: unpaced, a fast machine ran into the read limit, which is not what this tests.
        const paced = sleep(MIN_LANE_GAP_MS);
        await lanePick(n);
        await paced;
      }
    }
    async function lanePick(n: number): Promise<void> {
      const p = pick(players);
      const r = pick(regional);
      switch (Math.floor(Math.random() * 6)) {
        case 0:
        case 1: {
          const key = randomUUID();
          await send(n, 'write', p.home === killed, '/score/add', json({ delta: 1 }, p.token, { 'idempotency-key': key }), { player: p, key });
          break;
        }
        case 2:
          await send(n, 'rank regional', r.home === killed, `/rank/${r.userId}?region=${r.region}`);
          break;
        case 3:
          await send(n, 'top regional', r.home === killed, `/top?region=${r.region}&limit=10`);
          break;
        case 4:
          await send(n, 'around GLOBAL', true, `/around/${p.userId}?region=GLOBAL&range=3`);
          break;
        default: {
          // A partial GLOBAL page needs no particular shard; a whole one needs them all.
          const partial = Math.random() < 0.5;
          await send(n, partial ? 'top GLOBAL partial' : 'top GLOBAL', !partial, `/top?region=GLOBAL&limit=10${partial ? '&partial=true' : ''}`);
        }
      }
    }

    const lanes = Array.from({ length: 6 }, (_, i) => lane(i));
    await sleep(1500);
    const victim = stack.component(`redis-${killed}`);
    const killedAt = Date.now();
    process.kill(victim.pid!, 'SIGKILL');
    // The supervisor notices, restarts it on its port with its append-only file, and reports it healthy.
    const back = await eventually(
      async () => {
        const c = stack.component(`redis-${killed}`);
        return c.status === 'healthy' && c.pid !== undefined && c.pid !== victim.pid ? Date.now() : undefined;
      },
      60_000,
      `redis-${killed} restarted`,
    );
    stopAt = back + 8000;
    await Promise.all(lanes);

    const describe = (o: Outcome) => `${o.op} ${o.status} ${JSON.stringify(o.body)?.slice(0, 160)} at +${o.sentAt - killedAt} ms`;
    const during = outcomes.filter((o) => o.sentAt >= killedAt);
    expect(during.filter((o) => o.needsKilled && o.status === 503), 'the outage was seen').to.not.be.empty;
    // Requests that do not need the shard: not one failure.
    const collateral = outcomes.filter((o) => !o.needsKilled && o.status !== 200);
    // The list in the message too: mocha's diff of long strings can come out empty.
    expect(collateral.map(describe), `requests that do not need the killed shard: ${collateral.slice(0, 5).map(describe).join('; ')}`).to.deep.equal([]);
    // Requests that need it: 200 or a clean 503 naming it, with Retry-After; never a 5xx of another kind.
    for (const o of outcomes.filter((x) => x.needsKilled && x.status !== 200)) {
      expect(o.status, describe(o)).to.equal(503);
      expect(o.body, describe(o)).to.deep.include({ error: 'unavailable', shard: killed });
      expect(o.retryAfter, describe(o)).to.equal('1');
    }
    // Back to 200 within 5 s of the shard's return.
    const late = outcomes.filter((o) => o.sentAt > back + 5000 && o.status !== 200);
    expect(late.map(describe), 'answers later than 5 s after the shard came back').to.deep.equal([]);
    expect(outcomes.filter((o) => o.sentAt > back + 5000).length, 'load went on after the return').to.be.greaterThan(20);
    // Writes homed elsewhere went on, some without a GLOBAL rank while the shard was away.
    const blind = outcomes.filter((o) => o.write && o.status === 200 && o.body.rank.global === null);
    expect(blind, 'writes answered without a GLOBAL rank').to.not.be.empty;
    for (const o of blind) expect(o.body.missing_shards).to.deep.equal([killed]);

    // Nothing acknowledged is lost: every player's score is the number of
    // writes answered 200. A write whose answer was lost mid-call (in doubt)
    // is settled by sending it again with its Idempotency-Key; a plain 503
    // was not applied and does not count.
    const applied = new Map<string, number>();
    for (const o of outcomes.filter((x) => x.write)) {
      let ok = o.status === 200;
      if (o.status === 503 && o.body.in_doubt) {
        const again = await callFrom('127.0.1.100', url('/score/add'), json({ delta: 1 }, o.write!.player.token, { 'idempotency-key': o.write!.key }));
        ok = again.status === 200;
      }
      if (ok) applied.set(o.write!.player.userId, (applied.get(o.write!.player.userId) ?? 0) + 1);
    }
    for (const p of players) {
      const r = await callFrom('127.0.1.100', url(`/rank/${p.userId}?region=GLOBAL`));
      expect(r.status).to.equal(200);
      expect(r.body.score, `${p.userId} (${p.home})`).to.equal(applied.get(p.userId) ?? 0);
    }
    await eventually(async () => ((await stores!.drained()) ? true : undefined), 60_000, 'queues drained');
    expect(await stores!.compareRedisWithPostgres(players.map((p) => ({ user_id: p.userId, region: p.region })))).to.deep.equal([]);
    expect(stackLog.some((l) => l.includes(`redis-${killed}`) && /exited unexpectedly/.test(l)), 'the crash was reported').to.equal(true);
  });

  it('when a write cannot get its GLOBAL rank because another shard is down, then it answers 200 with rank.global null and is applied exactly once', async () => {
    const p = await register('127.0.2.1', 'EU', 'blind');
    await stack.kill('redis-asia');
    try {
      const w = await callFrom('127.0.2.1', url('/score/add'), json({ delta: 7 }, p.token));
      expect(w.status, JSON.stringify(w.body)).to.equal(200);
      expect(w.body).to.deep.include({ score: 7, version: 2, missing_shards: ['asia'] });
      expect(w.body.rank.global).to.equal(null);
      expect(w.body.rank.region).to.be.a('number');
      expect(await stores!.redisUser(p.userId, 'EU')).to.deep.equal({ score: 7, version: 2 });
    } finally {
      await stack.restart('redis-asia');
    }
    const r = await eventually(async () => {
      const x = await callFrom('127.0.2.1', url(`/rank/${p.userId}?region=GLOBAL`));
      return x.status === 200 ? x : undefined;
    }, 10_000);
    expect(r.body.score).to.equal(7);
  });

  it('when players register without initialScore in every region, then they are on the boards at once and Postgres has their rows once the queues drain', async () => {
    const players = [];
    for (const region of ['NA', 'EU', 'ASIA', 'GLOBAL']) players.push(await register('127.0.3.1', region, `zero-${region}`));
    for (const p of players) {
      const r = await callFrom('127.0.3.1', url(`/rank/${p.userId}?region=${p.region}`));
      expect(r.status).to.equal(200);
      expect(r.body.score).to.equal(0);
    }
    await eventually(async () => ((await stores!.drained()) ? true : undefined), 60_000, 'queues drained');
    expect(await stores!.compareRedisWithPostgres(players.map((p) => ({ user_id: p.userId, region: p.region })))).to.deep.equal([]);
    const h = await callFrom('127.0.3.1', url(`/history/${players[0]!.userId}`));
    expect(h.body.events).to.have.length(1);
    expect(h.body.events[0]).to.deep.include({ version: 1, op: 'register', score: 0 });
  });

  it('when logins fail in a flood, then a known and an unknown user alike get 429 after the configured failures, and the right password works after the window', async () => {
    const from = '127.0.4.1';
    const known = await register(from, 'EU', 'flood');
    const login = (user_id: string, password: string) => callFrom(from, url('/auth/login'), json({ user_id, password }));
    for (const user of [known.userId, uniqueId('ghost')]) {
      const rs = await Promise.all(Array.from({ length: 40 }, () => login(user, 'not the password')));
      const statuses = rs.map((r) => r.status);
      expect(statuses.filter((s) => s === 401), user).to.have.length(5);
      expect(statuses.filter((s) => s === 429), user).to.have.length(35);
      const refused = rs.find((r) => r.status === 429)!;
      expect(refused.body.error).to.equal('rate_limited');
      expect(Number(refused.headers.get('retry-after'))).to.be.greaterThan(0);
    }
    expect((await login(known.userId, PASSWORD)).status).to.equal(429);
    await sleep(2500);
    const ok = await login(known.userId, PASSWORD);
    expect(ok.status).to.equal(200);
  });

  it('when every read carries a fresh forged X-Forwarded-For, then the client is still one address to the read limit', async () => {
    const sent = READS_PER_MINUTE * stack.gatewayUrls.length * 2;
    const statuses: number[] = [];
    const lanes = Array.from({ length: 8 }, async () => {
      while (statuses.length < sent) {
        const forged = `198.51.100.${Math.floor(Math.random() * 250)}, 203.0.113.${Math.floor(Math.random() * 250)}`;
        statuses.push((await callFrom('127.0.5.1', url('/top?region=EU'), { headers: { 'x-forwarded-for': forged } })).status);
      }
    });
    await Promise.all(lanes);
    // Each gateway allows READS_PER_MINUTE per address; everything beyond is refused.
    const allowed = statuses.filter((s) => s === 200).length;
    expect(allowed).to.be.at.most(READS_PER_MINUTE * stack.gatewayUrls.length);
    expect(statuses.filter((s) => s === 429).length).to.be.at.least(statuses.length - READS_PER_MINUTE * stack.gatewayUrls.length);
    // Another address is not affected.
    expect((await callFrom('127.0.5.2', url('/top?region=EU'))).status).to.equal(200);
  });

  /** Sends raw bytes to nginx and returns what came back before it closed (or `waitMs` passed). */
  function rawExchange(parts: { data: string; afterMs: number }[], waitMs: number): Promise<{ head: string; body: any; closed: boolean }> {
    return new Promise((resolve) => {
      const s = net.connect({ port: Number(new URL(stack.url).port), host: '127.0.0.1', localAddress: '127.0.6.1' });
      let text = '';
      let closed = false;
      const finish = () => {
        const i = text.indexOf('\r\n\r\n');
        const bodyText = i < 0 ? '' : text.slice(i + 4);
        let body: unknown = bodyText;
        try {
          body = JSON.parse(bodyText);
        } catch {
          /* not JSON: the assertion will say so */
        }
        resolve({ head: i < 0 ? text : text.slice(0, i), body, closed });
      };
      s.on('data', (d) => (text += d.toString()));
      s.on('error', () => undefined);
      s.on('close', () => {
        closed = true;
        clearTimeout(timer);
        finish();
      });
      const timer = setTimeout(() => {
        finish();
        s.destroy();
      }, waitMs);
      void (async () => {
        for (const p of parts) {
          await sleep(p.afterMs);
          if (s.destroyed) return;
          s.write(p.data);
        }
      })();
    });
  }

  it('when a body stalls or trickles, then 408 request_timeout in the JSON shape closes the connection', async () => {
    const head = 'POST /auth/login HTTP/1.1\r\nHost: lb\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n';
    for (const [what, parts] of [
      ['stalled', [{ data: head, afterMs: 0 }]],
      ['trickled', [{ data: head, afterMs: 0 }, ...Array.from({ length: 40 }, () => ({ data: 'x', afterMs: 100 }))]],
    ] as const) {
      const r = await rawExchange([...parts], 8000);
      expect(r.head, what).to.match(/^HTTP\/1\.1 408 /);
      expect(r.body, what).to.deep.include({ error: 'request_timeout' });
      expect(r.closed, `${what}: connection closed`).to.equal(true);
    }
  });

  it("when nginx refuses a request itself (oversized headers, traversal, long URI, large body, garbage), then its answer is the platform's JSON error", async () => {
    const cases: [string, string, number, string][] = [
      ['40 KB header', `GET /top HTTP/1.1\r\nHost: lb\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`, 431, 'headers_too_large'],
      ['%2f traversal', 'GET /history/..%2f..%2f..%2fetc%2fpasswd HTTP/1.1\r\nHost: lb\r\n\r\n', 400, 'invalid_payload'],
      ['long URI', `GET /top?${'a'.repeat(20_000)} HTTP/1.1\r\nHost: lb\r\n\r\n`, 414, 'uri_too_long'],
      ['large body', 'POST /auth/login HTTP/1.1\r\nHost: lb\r\nContent-Type: application/json\r\nContent-Length: 20000\r\n\r\n', 413, 'payload_too_large'],
      ['garbage', 'HELLO THERE\r\n\r\n', 400, 'invalid_payload'],
    ];
    for (const [what, request, status, code] of cases) {
      const r = await rawExchange([{ data: request, afterMs: 0 }], 3000);
      expect(r.head, what).to.match(new RegExp(`^HTTP/1\\.1 ${status} `));
      expect(r.head.toLowerCase(), what).to.include('content-type: application/json');
      expect(r.body, what).to.deep.include({ error: code });
      expect(r.body.message, what).to.be.a('string');
    }
  });

  it('when a token claims a future iat, a name is not well-formed or a user id is not path-safe, then 4xx with a clear code', async () => {
    const from = '127.0.7.1';
    const p = await register(from, 'ASIA', 'val');
    const now = Math.floor(Date.now() / 1000);
    const future = jwt.sign({ sub: p.userId, name: 'V', region: 'ASIA', iss: 'leaderboard-platform', iat: now + 86_400, exp: now + 90_000 }, stack.jwtSecret, {
      algorithm: 'HS256',
    });
    const w = await callFrom(from, url('/score/add'), json({ delta: 1 }, future));
    expect([w.status, w.body.error]).to.deep.equal([401, 'invalid_token']);
    for (const [user_id, name, field] of [
      [uniqueId('v'), 'x\ud800y', 'name'],
      [uniqueId('v'), 'ring\u0007', 'name'],
      ['.', 'Dot', 'user_id'],
      ['..', 'Dots', 'user_id'],
    ]) {
      const r = await callFrom(from, url('/auth/register'), json({ user_id, name, region: 'EU', password: PASSWORD }));
      expect([r.status, r.body.error, r.body.field], `${user_id} ${JSON.stringify(name)}`).to.deep.equal([400, 'invalid_payload', field]);
    }
  });
});
