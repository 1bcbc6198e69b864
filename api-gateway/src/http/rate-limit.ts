/**
 * Per-client-IP limit on reads. In memory (RateLimiterMemory), so each
 * gateway process counts on its own: with N gateways behind nginx a client
 * gets up to N times the limit. That is fine for a generous abuse guard on
 * cheap cached reads and keeps Redis off the read hot path; writes are
 * limited exactly, per player and region, by the leaderboard-service's
 * Redis-backed buckets.
 */
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { AppError } from '@lb/common/contracts';

export class ReadLimiter {
  private readonly limiter: RateLimiterMemory;

  constructor(count: number, windowMs: number) {
    this.limiter = new RateLimiterMemory({ points: count, duration: windowMs / 1000 });
  }

  /** Counts one read for `clientIp`; rejects with 429 `rate_limited` (and `retry_after` seconds) over the limit. */
  async take(clientIp: string): Promise<void> {
    try {
      await this.limiter.consume(clientIp);
    } catch (e) {
      if (e instanceof RateLimiterRes) {
        const retryAfter = Math.max(1, Math.ceil(e.msBeforeNext / 1000));
        throw new AppError('rate_limited', 'too many requests, slow down', { retry_after: retryAfter });
      }
      throw e;
    }
  }
}
