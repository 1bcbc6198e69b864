/**
 * The only module that talks to the shards' Redis: one client per shard and
 * typed methods over the Lua scripts in `./lua`. Scripts run by EVALSHA and
 * fall back to EVAL when the server does not have them cached (after a
 * restart or SCRIPT FLUSH), like node-redis' own script commands.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ClientClosedError, ClientOfflineError, createClient, ErrorReply } from 'redis';
import { shardKeys, StoreUnavailable, type Logger, type NamedEntry, type ShardDef, type ShardKeys } from '@lb/common';

/**
 * One shard's client. Commands fail at once while disconnected instead of
 * queueing forever. Timeouts are kept by `guard` with one plain timer per
 * call: node-redis' own per-command timeout builds an AbortSignal and a
 * DOMException per command, which cost a tenth of a write's CPU.
 */
function makeClient(url: string, timeoutMs: number) {
  return createClient({
    url,
    disableOfflineQueue: true,
    // 0 turns off node-redis' default 5 s per-command timeout (see above).
    commandOptions: { timeout: 0 },
    socket: {
      connectTimeout: timeoutMs,
      reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2000),
    },
  });
}

type Client = ReturnType<typeof makeClient>;

interface Script {
  readonly name: string;
  readonly source: string;
  readonly sha: string;
}

function loadScript(name: string): Script {
  const source = readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8');
  return { name, source, sha: createHash('sha1').update(source).digest('hex') };
}

const SCRIPTS = {
  write: loadScript('write'),
  top: loadScript('top'),
  locate: loadScript('locate'),
  restore: loadScript('restore'),
};

/**
 * How many entries of each board the top-page caches hold (top.ts): writes
 * publish a change within this many entries of a shard's board. A constant,
 * not a setting, so every replica publishes what every other one caches.
 */
export const TOP_CACHE_DEPTH = 100;

/** Scores are stored negated so that ascending order is board order. */
const toStored = (score: number): string => (score === 0 ? '0' : String(-score));
const fromStored = (stored: string): number => {
  const n = -Number(stored);
  return n === 0 ? 0 : n;
};

export interface WriteInput {
  op: 'register' | 'create' | 'update' | 'add';
  value: number;
  userId: string;
  name: string;
  /** Home region, or GLOBAL for GLOBAL-only players. */
  region: string;
  /** Regional board to update, undefined for GLOBAL-only players. */
  regionalBoard: string | undefined;
  nowMs: number;
  maxScore: number;
  idempotency?: { key: string; fingerprint: string; ttlS: number };
  requestId: string;
  /** Refuse with queue_full when this many events wait to be persisted (0 = no limit). */
  backlogLimit: number;
}

export type WriteResult =
  | {
      kind: 'ok';
      score: number;
      version: number;
      regionalRank: number | null;
      globalHigherHere: number;
      changed: boolean;
      previousScore: number;
      /** The outbox entry written with the change (undefined when nothing changed). */
      event: { id: string; json: string } | undefined;
      /** The write changed the first rows (or the size) of a board and said so on the top-changed channel. */
      topChanged: boolean;
    }
  | { kind: 'replay'; stored: string }
  | { kind: 'out_of_range'; current: number; attempted: number }
  | { kind: 'queue_full'; backlog: number };

/** A call that was not answered in time (see {@link ShardStore.guard}). */
class CallTimeout extends Error {}

export interface RestoredPlayer {
  userId: string;
  name: string;
  region: string;
  regionalBoard: string | undefined;
  score: number;
  version: number;
  updatedAtMs: number;
}

export interface LocateResult {
  found: boolean;
  total: number;
  score: number;
  name: string;
  region: string;
  higher: number;
  lower: number;
  position: number;
  firstAboveHigher: number;
  above: NamedEntry[];
  below: NamedEntry[];
}

/** A subscription made by {@link ShardStore.watchTopChanges}. */
export interface TopChangeWatch {
  /** Subscribed and connected: every change published from now on arrives. */
  live(): boolean;
  close(): Promise<void>;
}

export class ShardStore {
  readonly keys: ShardKeys;

  constructor(
    readonly shard: ShardDef,
    readonly client: Client,
    keyPrefix: string,
    private readonly log: Logger,
    private readonly timeoutMs: number,
  ) {
    this.keys = shardKeys(shard.id, keyPrefix);
  }

  /**
   * Applies one write atomically (see write.lua). Throws StoreUnavailable
   * when the shard does not answer: `inDoubt` when the call was sent and its
   * connection dropped before the answer (the write may have been applied);
   * otherwise nothing was applied. A call not answered in time changes
   * nothing even if the shard runs it later: the script refuses to run after
   * a deadline half-way through the timeout (on the shard's clock).
   */
  async write(w: WriteInput): Promise<WriteResult> {
    const k = this.keys;
    const keys = [
      k.user(w.userId),
      k.board('GLOBAL'),
      k.names,
      k.idempotency(w.userId, w.idempotency?.key ?? ''),
      k.outbox,
      k.outboxIndex,
    ];
    if (w.regionalBoard !== undefined) keys.push(k.board(w.regionalBoard));
    const args = [
      w.op,
      String(w.value),
      w.userId,
      w.name,
      w.region,
      String(w.nowMs),
      String(w.maxScore),
      w.idempotency?.fingerprint ?? '',
      String(w.idempotency?.ttlS ?? 0),
      w.requestId,
      String(w.backlogLimit),
      String(TOP_CACHE_DEPTH),
      k.topChanged,
      String(Date.now() + Math.floor(this.timeoutMs / 2)),
    ];
    const r = (await this.guard(() => this.evalScript(SCRIPTS.write.sha, SCRIPTS.write.source, keys, args), true)) as (string | number)[];
    // Ran after its deadline: the shard was stalled; nothing was applied.
    if (r[0] === 'expired') throw new StoreUnavailable('redis', this.shard.id);
    if (r[0] === 'replay') return { kind: 'replay', stored: String(r[1]) };
    if (r[0] === 'out_of_range') return { kind: 'out_of_range', current: Number(r[1]), attempted: Number(r[2]) };
    if (r[0] === 'queue_full') return { kind: 'queue_full', backlog: Number(r[1]) };
    const regional = Number(r[3]);
    return {
      kind: 'ok',
      score: Number(r[1]),
      version: Number(r[2]),
      regionalRank: regional < 0 ? null : regional,
      globalHigherHere: Number(r[4]),
      changed: Number(r[5]) === 1,
      previousScore: Number(r[6]),
      event: r[7] ? { id: String(r[7]), json: String(r[8]) } : undefined,
      topChanged: Number(r[9]) === 1,
    };
  }

  /** Restores one player from Postgres unless Redis has the same or a newer version (see restore.lua). */
  async restore(p: RestoredPlayer): Promise<boolean> {
    const keys = [this.keys.user(p.userId), this.keys.board('GLOBAL'), this.keys.names];
    if (p.regionalBoard !== undefined) keys.push(this.keys.board(p.regionalBoard));
    const r = await this.run(SCRIPTS.restore, keys, [p.userId, p.name, p.region, String(p.score), String(p.version), String(p.updatedAtMs), this.keys.topChanged]);
    return Number(r) === 1;
  }

  /** Replaces an idempotency record with the full response, keeping its TTL. */
  async storeIdempotentResponse(userId: string, key: string, value: string): Promise<void> {
    await this.guard(() => this.client.set(this.keys.idempotency(userId, key), value, { XX: true, KEEPTTL: true }));
  }

  /** The first `limit` rows of a board on this shard, with names, and its size. */
  async top(board: string, limit: number): Promise<{ total: number; rows: NamedEntry[] }> {
    const r = (await this.run(SCRIPTS.top, [this.keys.board(board), this.keys.names], [String(limit)])) as (
      | string
      | number
    )[];
    const rows: NamedEntry[] = [];
    for (let i = 1; i + 2 < r.length; i += 3) {
      rows.push({ user_id: String(r[i]), score: fromStored(String(r[i + 1])), name: String(r[i + 2]) });
    }
    return { total: Number(r[0]), rows };
  }

  /**
   * Where a player stands on a board of this shard: `score` undefined looks
   * the player up here; a given score places a player living elsewhere.
   */
  async locate(board: string, userId: string, score: number | undefined, range: number): Promise<LocateResult> {
    const r = (await this.run(
      SCRIPTS.locate,
      [this.keys.board(board), this.keys.names, this.keys.user(userId)],
      [userId, score === undefined ? '' : toStored(score), String(range)],
    )) as (string | number)[];
    if (Number(r[0]) === 0) {
      return { found: false, total: Number(r[1]), score: 0, name: '', region: '', higher: 0, lower: 0, position: 0, firstAboveHigher: 0, above: [], below: [] };
    }
    const nAbove = Number(r[9]);
    const nBelow = Number(r[10]);
    const rows: NamedEntry[] = [];
    for (let i = 11; i < 11 + 3 * (nAbove + nBelow); i += 3) {
      rows.push({ user_id: String(r[i]), score: fromStored(String(r[i + 1])), name: String(r[i + 2]) });
    }
    return {
      found: true,
      score: fromStored(String(r[1])),
      name: String(r[2]),
      region: String(r[3]),
      total: Number(r[4]),
      higher: Number(r[5]),
      lower: Number(r[6]),
      position: Number(r[7]),
      firstAboveHigher: Number(r[8]),
      above: rows.slice(0, nAbove),
      below: rows.slice(nAbove),
    };
  }

  /**
   * Takes relayed events off the outbox index (they are on the queue now).
   * They stay in the outbox itself, counted as backlog, until the worker has
   * them in Postgres.
   */
  async markQueued(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.guard(() => this.client.zRem(this.keys.outboxIndex, ids));
  }

  /** Removes entries from the outbox and its index for good (unreadable, or already gone). */
  async dropOutbox(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.guard(() => this.client.multi().hDel(this.keys.outbox, ids).zRem(this.keys.outboxIndex, ids).exec());
  }

  /** Outbox entries written before `olderThanMs` (ms epoch): events a relay may have missed. */
  async staleOutbox(olderThanMs: number, limit: number): Promise<{ id: string; json: string | null }[]> {
    return this.guard(async () => {
      const ids = await this.client.zRangeByScore(this.keys.outboxIndex, '-inf', olderThanMs, { LIMIT: { offset: 0, count: limit } });
      if (ids.length === 0) return [];
      const jsons = await this.client.hmGet(this.keys.outbox, ids);
      return ids.map((id, i) => ({ id, json: (jsons[i] as string | null) ?? null }));
    });
  }

  /** A player's score from the user hash, 0 when there is none. */
  async currentScore(userId: string): Promise<number> {
    const v = await this.guard(() => this.client.hGet(this.keys.user(userId), 'score'));
    return v === null || v === undefined ? 0 : Number(v);
  }

  /** Players on a board of this shard with a strictly higher score. */
  async countHigher(board: string, score: number): Promise<number> {
    return this.guard(() => this.client.zCount(this.keys.board(board), '-inf', `(${toStored(score)}`));
  }

  /**
   * Follows this shard's top-changed channel on a connection of its own
   * (a subscribed connection can send nothing else). `onChange` gets the name
   * of each board whose first entries a write changed; `onReset` runs
   * whenever messages may have been missed (connection lost, reconnected).
   * node-redis re-subscribes before it reports a reconnection ready.
   */
  watchTopChanges(onChange: (board: string) => void, onReset: () => void): TopChangeWatch {
    const sub = this.client.duplicate();
    let subscribed = false;
    let closed = false;
    sub.on('error', (err: Error) => {
      this.log.debug('redis subscriber error', { shard: this.shard.id, err: err.message });
      onReset();
    });
    sub.on('end', onReset);
    sub.on('ready', onReset);
    const start = async () => {
      await sub.connect();
      await sub.subscribe(this.keys.topChanged, (board: string) => onChange(board));
      subscribed = true;
      onReset();
    };
    start().catch((e: unknown) => {
      if (!closed) this.log.warn('top-change subscription failed: top pages are read uncached', { shard: this.shard.id, err: e as Error });
    });
    return {
      live: () => subscribed && sub.isReady,
      async close() {
        closed = true;
        try {
          await sub.close();
        } catch {
          try {
            sub.destroy();
          } catch {
            /* never connected */
          }
        }
      },
    };
  }

  async ping(): Promise<void> {
    await this.guard(() => this.client.ping());
  }

  /** Connected and ready now (a call would be sent rather than refused at once). */
  ready(): boolean {
    return this.client.isReady;
  }

  private run(script: Script, keys: string[], args: string[]): Promise<unknown> {
    return this.guard(() => this.evalScript(script.sha, script.source, keys, args));
  }

  /** EVALSHA, falling back to EVAL when the server does not know the script yet. */
  private async evalScript(sha: string, source: string, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    const tail = [String(keys.length), ...keys, ...args];
    try {
      return await this.client.sendCommand(['EVALSHA', sha, ...tail]);
    } catch (e) {
      if (!(e as Error).message?.startsWith('NOSCRIPT')) throw e;
      return await this.client.sendCommand(['EVAL', source, ...tail]);
    }
  }

  /**
   * The client rate-limiter-flexible is given: its scripts run by EVALSHA
   * here (it would send the whole script text with every EVAL otherwise),
   * under the same timeout and error mapping as everything else.
   */
  limiterClient(): {
    eval(script: string, o: { keys: string[]; arguments: string[] }): Promise<unknown>;
    del(key: string): Promise<number>;
    isReady: boolean;
  } {
    const shas = new Map<string, string>();
    const store = this;
    return {
      eval: (script, o) => {
        let sha = shas.get(script);
        if (!sha) {
          sha = createHash('sha1').update(script).digest('hex');
          shas.set(script, sha);
        }
        return store.guard(() => store.evalScript(sha!, script, o.keys, o.arguments));
      },
      del: (key) => store.guard(() => store.client.del(key)),
      get isReady() {
        return store.client.isReady;
      },
    };
  }

  private lastWarnAt = 0;
  private quietFailures = 0;

  /** Logs a failed call, at most once a second per shard while it is down (with how many were not logged). */
  private warnFailure(err: Error): void {
    const now = Date.now();
    if (now - this.lastWarnAt < 1000) {
      this.quietFailures++;
      return;
    }
    this.log.warn('redis command failed', { shard: this.shard.id, err, ...(this.quietFailures > 0 && { more_failures: this.quietFailures }) });
    this.lastWarnAt = now;
    this.quietFailures = 0;
  }

  /**
   * Runs one call with the timeout: Redis failures, and calls not answered
   * in time, become StoreUnavailable (503 at the HTTP edge).
   *
   * When the timer fires, the verdict waits one turn of the event loop
   * (setImmediate runs after the poll phase): an answer that arrived while
   * the loop was busy is read first instead of being reported as a timeout.
   *
   * @param writes the call changes data: a connection lost after it was sent
   *   leaves its outcome unknown (`inDoubt`). A refusal before sending (the
   *   client is offline), an error reply and a timeout (see {@link write})
   *   are certain not to have applied anything.
   */
  private async guard<T>(fn: () => Promise<T>, writes = false): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        fn(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => setImmediate(() => reject(new CallTimeout(`no answer within ${this.timeoutMs} ms`))), this.timeoutMs);
        }),
      ]);
    } catch (e) {
      const certain = e instanceof CallTimeout || e instanceof ClientOfflineError || e instanceof ClientClosedError || e instanceof ErrorReply;
      this.warnFailure(e as Error);
      throw new StoreUnavailable('redis', this.shard.id, writes && !certain, { cause: e });
    } finally {
      clearTimeout(timer);
    }
  }
}

/** One ShardStore per shard of the topology. */
export class ShardStores {
  private readonly byId = new Map<string, ShardStore>();

  constructor(shards: readonly ShardDef[], keyPrefix: string, commandTimeoutMs: number, log: Logger) {
    for (const shard of shards) {
      const client = makeClient(shard.redis, commandTimeoutMs);
      client.on('error', (err: Error) => log.debug('redis client error', { shard: shard.id, err: err.message }));
      this.byId.set(shard.id, new ShardStore(shard, client, keyPrefix, log, commandTimeoutMs));
    }
  }

  get(id: string): ShardStore {
    const s = this.byId.get(id);
    if (!s) throw new Error(`no store for shard ${id}`);
    return s;
  }

  all(): ShardStore[] {
    return [...this.byId.values()];
  }

  /**
   * Connects every shard. A shard that does not answer within the timeout
   * does not stop start-up: its client keeps reconnecting, its commands
   * answer 503 meanwhile, and /health names it.
   */
  async connect(timeoutMs: number, log: Logger): Promise<void> {
    await Promise.all(
      this.all().map(async (s) => {
        const connecting = s.client.connect().catch(() => undefined);
        const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeoutMs).unref());
        if ((await Promise.race([connecting, timer])) === 'timeout') {
          log.warn('redis shard not reachable at start-up; continuing', { shard: s.shard.id, url: s.shard.redis });
        }
      }),
    );
  }

  async close(): Promise<void> {
    await Promise.all(
      this.all().map(async (s) => {
        try {
          await s.client.close();
        } catch {
          try {
            s.client.destroy();
          } catch {
            /* never connected */
          }
        }
      }),
    );
  }
}
