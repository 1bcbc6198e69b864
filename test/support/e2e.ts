/**
 * Helpers for end-to-end tests against a whole stack started with
 * `startStack` (scripts/stack/stack.ts): HTTP calls through nginx, hand-made
 * tokens, log searches, and the write-behind checks of test/support/pipeline.ts
 * (queues drained, Redis equals Postgres) done from outside the services, with
 * our own clients on the stack's topology.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import jwt from 'jsonwebtoken';
import pg from 'pg';
import type { RedisClientType } from 'redis';
import { mainEntry } from './main-entry.js';
import { DEFAULT_PROJECT, DEFAULT_KEY_PREFIX,
  queuePrefix,
  SCORE_QUEUE,
  ShardRouter,
  shardKeys,
  type ShardKeys,
  type Topology, } from '@lb/common/contracts';
import { connectionFor, openRedis, type Identity, type RedisHandle } from '@lb/common/platform';
import { playerMismatch, type Mismatch } from './pipeline.js';

/** One HTTP answer, body parsed as JSON when it is JSON. */
export interface Reply {
  status: number;
  body: any;
  headers: Headers;
}

/** A request that got no answer at all: refused, reset, or no answer within the timeout. */
export class NoAnswer extends Error {
  constructor(
    readonly url: string,
    cause: unknown,
  ) {
    super(`no answer from ${url}: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }
}

/** Longer than nginx's own proxy timeouts (10 s): past this a request counts as hung. */
export const HANG_MS = 15_000;

/**
 * Sends a request and reads the whole answer. Throws {@link NoAnswer} when
 * there is none within `HANG_MS` (so a hang is a failure, never a stuck test).
 */
export async function call(url: string, init: RequestInit = {}): Promise<Reply> {
  let res: Response;
  let text: string;
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(HANG_MS) });
    text = await res.text();
  } catch (e) {
    throw new NoAnswer(url, e);
  }
  let body: unknown = text;
  if ((res.headers.get('content-type') ?? '').includes('application/json') && text !== '') body = JSON.parse(text);
  return { status: res.status, body, headers: res.headers };
}

const agents = new Map<string, http.Agent>();

/**
 * {@link call} from a chosen loopback source address (127.0.0.0/8 all
 * reaches 127.0.0.1), so that tests can be distinct clients to nginx's and
 * the gateways' per-IP limits. Kept-alive connections per address.
 */
export function callFrom(
  localAddress: string,
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  let agent = agents.get(localAddress);
  if (!agent) {
    agent = new http.Agent({ keepAlive: true, localAddress, maxSockets: 8 });
    agents.set(localAddress, agent);
  }
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: init.method ?? 'GET', headers: init.headers, agent, timeout: HANG_MS }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers.set(k, v);
        let body: unknown = text;
        if ((res.headers['content-type'] ?? '').includes('application/json') && text !== '') body = JSON.parse(text);
        resolve({ status: res.statusCode!, body, headers });
      });
      res.on('error', (e) => reject(new NoAnswer(url, e)));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${HANG_MS} ms`)));
    req.on('error', (e) => reject(new NoAnswer(url, e)));
    req.end(init.body);
  });
}

/** Closes the kept-alive connections of {@link callFrom}. */
export function closeCallFromAgents(): void {
  for (const a of agents.values()) a.destroy();
  agents.clear();
}

/** JSON POST with optional bearer token and extra headers. */
export function post(url: string, body: unknown, opts: { token?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  return call(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(opts.token !== undefined && { authorization: `Bearer ${opts.token}` }),
      ...opts.headers,
    },
    body: JSON.stringify(body),
  });
}

/** True when `body` has the platform's error shape: `{"error": code, "message": text, ...}`. */
export function isErrorShape(body: unknown): boolean {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return false;
  const b = body as Record<string, unknown>;
  return typeof b.error === 'string' && /^[a-z_]+$/.test(b.error) && typeof b.message === 'string';
}

/** Polls `fn` until it returns something other than undefined (errors count as "not yet"). */
export async function eventually<T>(fn: () => Promise<T | undefined>, timeoutMs: number, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(100);
  }
}

/** The address of the gateway that answered: the last entry of nginx's `$upstream_addr` list. */
export function answeringGateway(upstreamAddr: string | null): string | undefined {
  if (!upstreamAddr) return undefined;
  return upstreamAddr.split(/\s*[,:]\s+/).at(-1);
}

/** Every address in nginx's `$upstream_addr` (several when nginx tried more than one gateway). */
export function triedGateways(upstreamAddr: string | null): string[] {
  return upstreamAddr ? upstreamAddr.split(/\s*[,:]\s+/).filter((a) => a !== '') : [];
}

/** Runs `tasks` with at most `concurrency` in flight; resolves when all are done. */
export async function runPool<T>(tasks: readonly (() => Promise<T>)[], concurrency: number): Promise<T[]> {
  const out: T[] = new Array(tasks.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < tasks.length) {
      const i = next++;
      out[i] = await tasks[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, tasks.length) }, lane));
  return out;
}

// ------------------------------------------------------------- tokens ----

const base64url = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

/** A well-formed HS256 token for `who`, signed with a secret the stack does not know. */
export function forgedToken(who: Identity, issuer = 'leaderboard-platform'): string {
  return jwt.sign({ name: who.name, region: who.region }, 'not-the-stack-secret-but-long-enough-to-pass', {
    algorithm: 'HS256',
    subject: who.userId,
    issuer,
    expiresIn: 3600,
  });
}

/** A token signed with the right secret that expired a minute ago. */
export function expiredToken(who: Identity, secret: string, issuer = 'leaderboard-platform'): string {
  const now = Math.floor(Date.now() / 1000);
  return jwt.sign({ name: who.name, region: who.region, iat: now - 3660, exp: now - 60 }, secret, {
    algorithm: 'HS256',
    subject: who.userId,
    issuer,
  });
}

/** An unsigned token (`alg: none`, empty signature) with valid claims. */
export function unsignedToken(who: Identity, issuer = 'leaderboard-platform'): string {
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub: who.userId, name: who.name, region: who.region, iss: issuer, iat: now, exp: now + 3600 };
  return `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url(claims)}.`;
}

// --------------------------------------------------------------- logs ----

/** The lines of a log file that contain `text` (none when the file does not exist). */
export function linesWith(file: string, text: string): string[] {
  let content: string;
  try {
    content = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return content.split('\n').filter((l) => l.includes(text));
}

// ------------------------------------------------------ stores (outside) ----

interface ShardHandles {
  handle: RedisHandle;
  client: RedisClientType;
  keys: ShardKeys;
  queue: Queue;
}

/**
 * Read-only view of a running stack's Redis shards, BullMQ queues and
 * Postgres databases, from its topology: what `test/support/pipeline.ts`
 * checks through a TestService's own dependencies.
 */
export class StackStores {
  readonly router: ShardRouter;
  private readonly shards = new Map<string, ShardHandles>();
  private readonly pools = new Map<string, pg.Pool>();

  private constructor(topology: Topology) {
    this.router = new ShardRouter(topology);
  }

  /** Connects to every shard of `topology` (the stack's key prefix defaults to `lb`). */
  static async open(topology: Topology, keyPrefix: string = DEFAULT_KEY_PREFIX): Promise<StackStores> {
    const s = new StackStores(topology);
    try {
      for (const shard of topology.shards) {
        const handle = openRedis(shard.redis);
        handle.on('error', () => undefined); // a reconnect in progress is not a test failure by itself
        await handle.connect();
        const client = handle.client as unknown as RedisClientType;
        const queue = new Queue(SCORE_QUEUE, { connection: connectionFor(shard.redis, false), prefix: queuePrefix(shard.id, keyPrefix) });
        queue.on('error', () => undefined);
        s.shards.set(shard.id, { handle, client, keys: shardKeys(shard.id, keyPrefix), queue });
      }
      for (const url of new Set(topology.shards.map((x) => x.postgres))) s.pools.set(url, new pg.Pool({ connectionString: url, max: 2 }));
    } catch (e) {
      await s.close();
      throw e;
    }
    return s;
  }

  private handles(shardId: string): ShardHandles {
    const h = this.shards.get(shardId);
    if (!h) throw new Error(`no shard ${shardId}`);
    return h;
  }

  /** A player's entry on the board main on the home shard: score and version (null when absent). */
  async redisUser(userId: string, region: string): Promise<{ score: number | null; version: number | null }> {
    const shard = this.router.homeShard(userId, region);
    const h = this.handles(shard.id);
    const e = await mainEntry(h.client, h.keys, userId);
    return { score: e.score, version: e.version };
  }

  /**
   * The idempotency record of a player's key, if a write with that key was
   * applied: the write script stores it atomically with the score, so its
   * presence proves the write happened even when the caller never got the answer.
   */
  async idempotencyRecord(userId: string, region: string, key: string): Promise<{ version: number } | undefined> {
    const h = this.handles(this.router.homeShard(userId, region).id);
    const raw = await h.client.get(h.keys.project(DEFAULT_PROJECT).idempotency(userId, 'main', key));
    if (raw === null) return undefined;
    const rec = JSON.parse(raw) as { version?: number; response?: { version: number } };
    return { version: rec.response?.version ?? rec.version! };
  }

  /** True when no shard has events left to persist: outbox empty, queue idle. */
  async drained(): Promise<boolean> {
    for (const h of this.shards.values()) {
      if ((await h.client.hLen(h.keys.outbox)) > 0) return false;
      const c = await h.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
      if (c.waiting! + c.active! + c.delayed! + c.prioritized! > 0) return false;
    }
    return true;
  }

  /** Jobs in the dead-letter (failed) sets of all shards. */
  async failedJobs(): Promise<number> {
    let n = 0;
    for (const h of this.shards.values()) n += await h.queue.getFailedCount();
    return n;
  }

  /**
   * Compares each player's Redis hash with the Postgres row and event log on
   * the home shard: same score and version, and score_events holding
   * versions 1..version once each. Returns the players that differ.
   */
  async compareRedisWithPostgres(players: readonly { user_id: string; region: string }[]): Promise<Mismatch[]> {
    const mismatches: Mismatch[] = [];
    for (const p of players) {
      const shard = this.router.homeShard(p.user_id, p.region);
      const db = this.pools.get(shard.postgres)!;
      const redis = await this.redisUser(p.user_id, p.region);
      const m = await playerMismatch(db, p.user_id, redis);
      if (m) mismatches.push(m);
    }
    return mismatches;
  }

  async close(): Promise<void> {
    for (const h of this.shards.values()) {
      await h.queue.close().catch(() => undefined);
      // A queue whose close failed (its connection ended during a failover) would otherwise go on reconnecting to a stopped stack.
      await h.queue.disconnect().catch(() => undefined);
      await h.handle.close();
    }
    for (const p of this.pools.values()) await p.end().catch(() => undefined);
    this.shards.clear();
    this.pools.clear();
  }
}
