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
 * Each counter lives on the shard that hashing its key picks; while that
 * shard is down an in-memory limiter of the replica stands in (the library's
 * insurance limiter), so logins keep working and stay throttled.
 *
 * The operator's `npm run admin -- login status|unlock` reads and deletes
 * the same counters through {@link LoginGuard.status} and
 * {@link LoginGuard.unlock}, so the key names and shards are decided here only.
 */
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { AppError, type ShardRouter } from '@lb/common/contracts';
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
  private readonly byShard = new Map<string, Limiters>();

  /**
   * @param opts.insurance the in-memory stand-in while a shard is down (the
   *   default); the admin command goes without, so that a shard it cannot
   *   reach is an error rather than an answer about its own empty memory.
   */
  constructor(
    private readonly router: ShardRouter,
    stores: ShardStores,
    limits: LoginLimits,
    opts: { insurance?: boolean } = {},
  ) {
    const insurance = opts.insurance ?? true;
    for (const store of stores.all()) {
      const make = (name: string, points: number) =>
        new RateLimiterRedis({
          storeClient: store.limiterClient(),
          useRedisPackage: true,
          rejectIfRedisNotReady: true,
          keyPrefix: `${store.keys.rateLimitPrefix}:${name}`,
          points,
          duration: limits.windowS,
          ...(insurance && { insuranceLimiter: new RateLimiterMemory({ keyPrefix: name, points, duration: limits.windowS }) }),
        });
      this.byShard.set(store.shard.id, { user: make('login-user', limits.userMaxFails), ip: make('login-ip', limits.ipMaxFails) });
    }
  }

  /**
   * Counts one attempt for the user id and the IP; 429 `rate_limited` with
   * `retry_after` when either has used up its failures.
   */
  async admit(userId: string, ip: string): Promise<void> {
    const [user, byIp] = await Promise.allSettled([this.limiters(userId).user.consume(userId), this.limiters(ip).ip.consume(ip)]);
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
  async succeeded(userId: string, ip: string): Promise<void> {
    await Promise.allSettled([this.limiters(userId).user.delete(userId), this.limiters(ip).ip.reward(ip, 1)]);
  }

  /** The shard holding the counters of `key` (a user id or an IP). */
  shardOf(key: string): string {
    return this.router.hashShard(key).id;
  }

  /** The counter of a user id or an IP; undefined when it has none (nothing failed in a window that is still open). */
  async status(kind: LoginCounterKind, key: string): Promise<LoginCounter | undefined> {
    const r = await this.limiters(key)[kind].get(key);
    return r ? { failures: r.consumedPoints, remaining: r.remainingPoints, msLeft: Math.max(0, r.msBeforeNext) } : undefined;
  }

  /** Lifts a lockout: deletes the counter of a user id or an IP on its shard. False when there was none. */
  unlock(kind: LoginCounterKind, key: string): Promise<boolean> {
    return this.limiters(key)[kind].delete(key);
  }

  private limiters(key: string): Limiters {
    return this.byShard.get(this.shardOf(key))!;
  }
}
