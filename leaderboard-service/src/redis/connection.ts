/**
 * One shard's Redis connection: the client (a plain node-redis client, or
 * node-redis' Sentinel client following the shard's primary: @lb/common
 * openRedis), calls with a timeout that fail as StoreUnavailable, and
 * scripts run by EVALSHA with an EVAL fallback when the server does not have
 * them cached (after a restart, a failover or SCRIPT FLUSH), like
 * node-redis' own script commands.
 *
 * On a shard with a replica (behind Sentinel) a script that writes is
 * answered only once the replica has it: the scripts sent in one turn of the
 * event loop go on a primary connection of their own (the WAIT blocks it;
 * reads use the other) together with one `WAIT 1 <ms>` after them, in one
 * write to the socket, and each resolves when that WAIT counts
 * the replica. A WAIT that times out (the replica is gone or lagging) leaves
 * the writes applied on the primary but not confirmed: they fail *in doubt*
 * (503 unavailable, in_doubt: retry with the same Idempotency-Key), never as
 * "not applied".
 */
import { createHash } from 'node:crypto';
import { ClientClosedError, ClientOfflineError, ErrorReply } from 'redis';
import { StoreUnavailable, type ShardDef } from '@lb/common/contracts';
import { evalCached, inSpan, openRedis, RedisNotSent, secondsSince, SpanKind, tracingOn, type CallMetrics, type Logger, type RedisClient, type RedisHandle } from '@lb/common/platform';
import type { Script } from './scripts.js';

export type { RedisClient } from '@lb/common/platform';

/** A call that was not answered in time. */
class CallTimeout extends Error {}

/** A write the primary applied and its replica did not confirm within the WAIT timeout. */
class NotReplicated extends Error {}

/** One write script waiting for its turn's WAIT. */
interface PendingWrite {
  readonly command: string[];
  readonly source: string;
  /** The script's own answer arrived (it ran on the primary). */
  answered: boolean;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

/** What rate-limiter-flexible needs of a node-redis client (its counters run by EVALSHA here). */
export interface LimiterClient {
  eval(script: string, o: { keys: string[]; arguments: string[] }): Promise<unknown>;
  del(key: string): Promise<number>;
  /** The transaction the library's `get` sends: GET and PTTL of a counter. */
  multi(): LimiterMulti;
  readonly isReady: boolean;
}

export interface LimiterMulti {
  get(key: string): LimiterMulti;
  pTTL(key: string): LimiterMulti;
  exec(typed?: boolean): Promise<unknown[]>;
}

export class ShardConnection {
  readonly redis: RedisHandle;
  /** The shard has a replica: writes wait for it (see the module comment). */
  readonly replicated: boolean;
  /** How long a turn's WAIT waits for the replica: half the call timeout, so it answers before the call gives up. */
  readonly replicaWaitMs: number;
  private lastWarnAt = 0;
  private quietFailures = 0;
  private turn: PendingWrite[] | undefined;

  constructor(
    readonly shard: ShardDef,
    private readonly log: Logger,
    readonly timeoutMs: number,
    /** `lb_redis_command_duration_seconds` / `lb_redis_errors_total` (undefined: metrics off). */
    private readonly metrics?: CallMetrics,
  ) {
    this.redis = openRedis(shard.redis, { connectTimeoutMs: timeoutMs });
    this.redis.on('error', (err: Error) => log.debug('redis client error', { shard: shard.id, err: err.message }));
    this.replicated = shard.redis.kind === 'sentinel';
    this.replicaWaitMs = Math.max(10, Math.floor(timeoutMs / 2));
  }

  /** The commands (a Sentinel client behind Sentinel: the current primary's connection). */
  get client(): RedisClient {
    return this.redis.client;
  }

  /** Connected and ready now (a call would be sent rather than refused at once). */
  ready(): boolean {
    return this.redis.usable && this.client.isReady;
  }

  async ping(): Promise<void> {
    await this.call(() => this.client.ping());
  }

  /** Runs a script (see {@link call} for `writes`); traced as a CLIENT span `redis.<script>` when tracing is on. */
  runScript(script: Script, keys: readonly string[], args: readonly string[], writes = false): Promise<unknown> {
    const run = () =>
      writes && this.replicated
        ? this.replicatedCall(script, keys, args)
        : this.call(() => this.evalSha(script.sha, script.source, keys, args), writes, script.name);
    return tracingOn ? inSpan(`redis.${script.name}`, SpanKind.CLIENT, { 'db.system.name': 'redis', 'lb.shard': this.shard.id }, run) : run();
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
   *   client is offline), an error reply and a timeout (the write script
   *   refuses to run after its deadline) are certain not to have applied
   *   anything.
   * @param op the call's name in the Redis metrics (a script's name, or `command`).
   */
  async call<T>(fn: () => Promise<T>, writes = false, op = 'command', pending?: PendingWrite): Promise<T> {
    if (!this.redis.usable) throw this.unavailable(new ClientOfflineError());
    let timer: NodeJS.Timeout | undefined;
    const start = this.metrics && process.hrtime.bigint();
    let failed = true;
    try {
      const r = await Promise.race([
        fn(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => setImmediate(() => reject(new CallTimeout(`no answer within ${this.timeoutMs} ms`))), this.timeoutMs);
        }),
      ]);
      failed = false;
      return r;
    } catch (e) {
      // A replicated write whose script answered is applied, whatever came after (a WAIT that timed out, the call's own timeout).
      const applied = pending?.answered === true;
      const certain = !applied && (e instanceof CallTimeout || e instanceof RedisNotSent || e instanceof ClientOfflineError || e instanceof ClientClosedError || e instanceof ErrorReply);
      this.warnFailure(e as Error);
      throw new StoreUnavailable('redis', this.shard.id, writes && !certain, { cause: e });
    } finally {
      clearTimeout(timer);
      if (start !== undefined) this.metrics!.observe(this.shard.id, op, secondsSince(start), failed);
    }
  }

  /**
   * A write script on a shard with a replica: queued for this turn's
   * pipeline (the scripts, then one WAIT), answered once the replica
   * confirms.
   */
  private replicatedCall(script: Script, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    const tail = [String(keys.length), ...keys, ...args];
    let pending: PendingWrite;
    const queued = new Promise<unknown>((resolve, reject) => {
      pending = { command: ['EVALSHA', script.sha, ...tail], source: script.source, answered: false, resolve, reject };
    });
    return this.call(
      () => {
        this.enqueue(pending);
        return queued;
      },
      true,
      script.name,
      pending!,
    );
  }

  private enqueue(w: PendingWrite): void {
    if (this.turn) {
      this.turn.push(w);
      return;
    }
    this.turn = [w];
    setImmediate(() => {
      const writes = this.turn!;
      this.turn = undefined;
      void this.flush(writes);
    });
  }

  /** Sends a turn's scripts and its WAIT on one connection, in that order; settles each script by the WAIT's count. */
  private async flush(writes: PendingWrite[]): Promise<void> {
    const commands = [...writes.map((w) => w.command), ['WAIT', '1', String(this.replicaWaitMs)]];
    let replies: PromiseSettledResult<unknown>[];
    try {
      replies = await this.redis.sendInOrder(commands);
    } catch (e) {
      for (const w of writes) w.reject(e);
      return;
    }
    const wait = replies[replies.length - 1]!;
    const confirmed = wait.status === 'fulfilled' && Number(wait.value) >= 1;
    writes.forEach((w, i) => {
      const r = replies[i]!;
      if (r.status === 'rejected') {
        if (String((r.reason as Error)?.message).startsWith('NOSCRIPT')) {
          // Not cached on this primary (a restart, a failover): the source goes in the next turn, under its WAIT.
          w.command.splice(0, 2, 'EVAL', w.source);
          this.enqueue(w);
        } else w.reject(r.reason);
        return;
      }
      w.answered = true;
      if (confirmed) w.resolve(r.value);
      else
        w.reject(
          wait.status === 'rejected'
            ? wait.reason
            : new NotReplicated(`applied on the primary; its replica did not confirm within ${this.replicaWaitMs} ms`),
        );
    });
  }

  /**
   * The client rate-limiter-flexible is given: its scripts run by EVALSHA
   * here (it would send the whole script text with every EVAL otherwise),
   * under the same timeout and error mapping as everything else.
   */
  limiterClient(): LimiterClient {
    const shas = new Map<string, string>();
    const conn = this;
    return {
      eval: (script, o) => {
        let sha = shas.get(script);
        if (!sha) {
          sha = createHash('sha1').update(script).digest('hex');
          shas.set(script, sha);
        }
        return conn.call(() => conn.evalSha(sha!, script, o.keys, o.arguments));
      },
      del: (key) => conn.call(() => conn.client.del(key)),
      multi: () => {
        const queued: ((t: ReturnType<RedisClient['multi']>) => void)[] = [];
        const m: LimiterMulti = {
          get: (key) => (queued.push((t) => t.get(key)), m),
          pTTL: (key) => (queued.push((t) => t.pTTL(key)), m),
          exec: () =>
            conn.call(async () => {
              const t = conn.client.multi();
              for (const add of queued) add(t);
              return (await t.exec()) as unknown[];
            }),
        };
        return m;
      },
      get isReady() {
        return conn.client.isReady;
      },
    };
  }

  /** The error a call that did not reach the shard becomes (nothing was applied). */
  unavailable(cause?: unknown): StoreUnavailable {
    return new StoreUnavailable('redis', this.shard.id, false, { cause });
  }

  /** Connects, waiting at most the timeout: a shard down at start-up keeps reconnecting (its calls answer 503 meanwhile). */
  async connect(): Promise<boolean> {
    const connecting = this.redis.connect().then(
      () => true,
      () => false,
    );
    const timer = new Promise<boolean>((r) => setTimeout(() => r(false), this.timeoutMs).unref());
    return Promise.race([connecting, timer]);
  }

  close(): Promise<void> {
    return this.redis.close();
  }

  /** EVALSHA, falling back to EVAL when the server does not know the script yet (@lb/common evalCached). */
  private evalSha(sha: string, source: string, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    return evalCached((command) => this.redis.send(command), sha, source, keys, args);
  }

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
}
