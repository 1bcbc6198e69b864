/**
 * Login throttling, rate-limiter-flexible's login-protection pattern: a
 * counter of consecutive failures per user id and one of failures per client
 * IP, each over a fixed window, kept in Redis so every replica counts
 * together.
 *
 * An attempt is counted before its password is checked, so a burst of
 * parallel guesses is refused at once instead of each computing a hash; a
 * success then takes its attempt back (the user's counter is reset, the IP's
 * given back one point). Unknown and known user ids go through the same
 * steps and answer alike.
 *
 * Counters are a project's (user ids are unique only within a project):
 * each lives, under the project's keys (@lb/common keys.ts
 * `rateLimitPrefix`), on the shard that hashing its key picks; while that
 * shard is down an in-memory limiter of the replica stands in (the library's
 * insurance limiter), so logins keep working and stay throttled.
 *
 * The operator's `npm run admin -- login status|unlock` reads and deletes
 * the same counters through {@link LoginGuard.status} and
 * {@link LoginGuard.unlock}, so the key names and shards are decided here only.
 */
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { AppError, projectScope, type ProjectRef, type ShardRouter } from '@lb/common/contracts';
import type { ShardStores } from '../redis/shard-store.js';

export interface LoginLimits {
  /** LOGIN_USER_MAX_FAILS: failed logins of one user id per window before it is refused. */
  userMaxFails: number;
  /** LOGIN_IP_MAX_FAILS: failed logins from one client IP per window. */
  ipMaxFails: number;
  /** LOGIN_FAIL_WINDOW_S: the window, seconds (counted from the first failure). */
  windowS: number;
}

/** Which counter: a user id's or a client IP's. */
export type LoginCounterKind = 'user' | 'ip';

interface Limiters {
  user: RateLimiterRedis;
  ip: RateLimiterRedis;
}

/** Where one counter stands (what `admin login status` prints). */
export interface LoginCounter {
  /** Failures counted in this window (attempts, less the points successes gave back). */
  failures: number;
  /** Failures still allowed; 0 means the next attempt is refused. */
  remaining: number;
  /** Until the window (and any lockout) ends, ms. */
  msLeft: number;
}

export class LoginGuard {
  /** The limiters of each project met so far, by project scope, then by shard. */
  private readonly byProject = new Map<string, Map<string, Limiters>>();
  private readonly insurance: boolean;

  /**
   * @param opts.insurance the in-memory stand-in while a shard is down (the
   *   default); the admin command goes without, so that a shard it cannot
   *   reach is an error rather than an answer about its own empty memory.
   */
  constructor(
    private readonly router: ShardRouter,
    private readonly stores: ShardStores,
    private readonly limits: LoginLimits,
    opts: { insurance?: boolean } = {},
  ) {
    this.insurance = opts.insurance ?? true;
  }

  /** A project's limiters on every shard, made on first use (a limiter is a key prefix and its settings, no connection of its own). */
  private projectLimiters(project: ProjectRef): Map<string, Limiters> {
    const scope = projectScope(project);
    let byShard = this.byProject.get(scope);
    if (byShard !== undefined) return byShard;
    byShard = new Map();
    const limits = this.limits;
    for (const store of this.stores.all()) {
      const prefix = store.keys.project(project).rateLimitPrefix;
      const make = (name: string, points: number) =>
        new RateLimiterRedis({
          storeClient: store.limiterClient(),
          useRedisPackage: true,
          rejectIfRedisNotReady: true,
          keyPrefix: `${prefix}:${name}`,
          points,
          duration: limits.windowS,
          ...(this.insurance && { insuranceLimiter: new RateLimiterMemory({ keyPrefix: `${scope}:${name}`, points, duration: limits.windowS }) }),
        });
      byShard.set(store.shard.id, { user: make('login-user', limits.userMaxFails), ip: make('login-ip', limits.ipMaxFails) });
    }
    this.byProject.set(scope, byShard);
    return byShard;
  }

  /**
   * Counts one attempt for the user id and the IP; 429 `rate_limited` with
   * `retry_after` when either has used up its failures.
   */
  async admit(project: ProjectRef, userId: string, ip: string): Promise<void> {
    const [user, byIp] = await Promise.allSettled([this.limiters(project, userId).user.consume(userId), this.limiters(project, ip).ip.consume(ip)]);
    for (const r of [user, byIp]) {
      if (r.status === 'fulfilled') continue;
      if (r.reason instanceof RateLimiterRes) {
        throw new AppError('rate_limited', 'too many failed logins, try again later', {
          retry_after: Math.max(1, Math.ceil(r.reason.msBeforeNext / 1000)),
        });
      }
      throw r.reason;
    }
  }

  /** A correct password: the user's consecutive failures start again, and the IP gets its point back. */
  async succeeded(project: ProjectRef, userId: string, ip: string): Promise<void> {
    await Promise.allSettled([this.limiters(project, userId).user.delete(userId), this.limiters(project, ip).ip.reward(ip, 1)]);
  }

  /** The shard holding the counters of `key` (a user id or an IP). */
  shardOf(key: string): string {
    return this.router.hashShard(key).id;
  }

  /** The counter of a user id or an IP; undefined when it has none (nothing failed in a window that is still open). */
  async status(project: ProjectRef, kind: LoginCounterKind, key: string): Promise<LoginCounter | undefined> {
    const r = await this.limiters(project, key)[kind].get(key);
    return r ? { failures: r.consumedPoints, remaining: r.remainingPoints, msLeft: Math.max(0, r.msBeforeNext) } : undefined;
  }

  /** Lifts a lockout: deletes the counter of a user id or an IP on its shard. False when there was none. */
  unlock(project: ProjectRef, kind: LoginCounterKind, key: string): Promise<boolean> {
    return this.limiters(project, key)[kind].delete(key);
  }

  private limiters(project: ProjectRef, key: string): Limiters {
    return this.projectLimiters(project).get(this.shardOf(key))!;
  }
}
