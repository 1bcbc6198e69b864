/**
 * One shard's Redis connection: the node-redis client, calls with a timeout
 * that fail as StoreUnavailable, and scripts run by EVALSHA with an EVAL
 * fallback when the server does not have them cached (after a restart or
 * SCRIPT FLUSH), like node-redis' own script commands.
 */
import { createHash } from 'node:crypto';
import { ClientClosedError, ClientOfflineError, createClient, ErrorReply } from 'redis';
import { StoreUnavailable, type ShardDef } from '@lb/common/contracts';
import { evalCached, inSpan, secondsSince, SpanKind, tracingOn, type CallMetrics, type Logger } from '@lb/common/platform';
import type { Script } from './scripts.js';

/**
 * Commands fail at once while disconnected instead of queueing forever.
 * Timeouts are kept by `call` with one plain timer per call: node-redis' own
 * per-command timeout builds an AbortSignal and a DOMException per command,
 * which cost a tenth of a write's CPU.
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

export type RedisClient = ReturnType<typeof makeClient>;

/** A call that was not answered in time. */
class CallTimeout extends Error {}

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
  readonly client: RedisClient;
  private lastWarnAt = 0;
  private quietFailures = 0;

  constructor(
    readonly shard: ShardDef,
    private readonly log: Logger,
    readonly timeoutMs: number,
    /** `lb_redis_command_duration_seconds` / `lb_redis_errors_total` (undefined: metrics off). */
    private readonly metrics?: CallMetrics,
  ) {
    this.client = makeClient(shard.redis, timeoutMs);
    this.client.on('error', (err: Error) => log.debug('redis client error', { shard: shard.id, err: err.message }));
  }

  /** Connected and ready now (a call would be sent rather than refused at once). */
  ready(): boolean {
    return this.client.isReady;
  }

  async ping(): Promise<void> {
    await this.call(() => this.client.ping());
  }

  /** Runs a script (see {@link call} for `writes`); traced as a CLIENT span `redis.<script>` when tracing is on. */
  runScript(script: Script, keys: readonly string[], args: readonly string[], writes = false): Promise<unknown> {
    const run = () => this.call(() => this.evalSha(script.sha, script.source, keys, args), writes, script.name);
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
  async call<T>(fn: () => Promise<T>, writes = false, op = 'command'): Promise<T> {
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
      const certain = e instanceof CallTimeout || e instanceof ClientOfflineError || e instanceof ClientClosedError || e instanceof ErrorReply;
      this.warnFailure(e as Error);
      throw new StoreUnavailable('redis', this.shard.id, writes && !certain, { cause: e });
    } finally {
      clearTimeout(timer);
      if (start !== undefined) this.metrics!.observe(this.shard.id, op, secondsSince(start), failed);
    }
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
    const connecting = this.client.connect().then(
      () => true,
      () => false,
    );
    const timer = new Promise<boolean>((r) => setTimeout(() => r(false), this.timeoutMs).unref());
    return Promise.race([connecting, timer]);
  }

  async close(): Promise<void> {
    try {
      await this.client.close();
    } catch {
      try {
        this.client.destroy();
      } catch {
        /* never connected */
      }
    }
  }

  /** EVALSHA, falling back to EVAL when the server does not know the script yet (@lb/common evalCached). */
  private evalSha(sha: string, source: string, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    return evalCached((command) => this.client.sendCommand(command), sha, source, keys, args);
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
