/**
 * Write limits, checked before any state changes: a token bucket per player
 * and one per region, kept in the home shard's Redis through
 * rate-limiter-flexible (with a token-bucket script, see token-bucket.lua).
 */
import { readFileSync } from 'node:fs';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { AppError, StoreUnavailable } from '@lb/common';
import type { ShardStore } from '../redis/shard-store.js';

export interface LimitSettings {
  userCount: number;
  userWindowMs: number;
  regionCount: number;
  regionWindowMs: number;
}

const TOKEN_BUCKET = readFileSync(new URL('../redis/lua/token-bucket.lua', import.meta.url), 'utf8');

interface ShardLimiters {
  user: RateLimiterRedis;
  region: RateLimiterRedis;
}

export class WriteLimits {
  private readonly byShard = new Map<string, ShardLimiters>();

  constructor(stores: readonly ShardStore[], s: LimitSettings) {
    for (const store of stores) {
      const make = (name: string, points: number, windowMs: number) =>
        new RateLimiterRedis({
          storeClient: store.limiterClient(),
          useRedisPackage: true,
          rejectIfRedisNotReady: true,
          keyPrefix: `${store.keys.rateLimitPrefix}:${name}`,
          points,
          duration: windowMs / 1000,
          customIncrTtlLuaScript: TOKEN_BUCKET,
        });
      this.byShard.set(store.shard.id, {
        user: make('user', s.userCount, s.userWindowMs),
        region: make('region', s.regionCount, s.regionWindowMs),
      });
    }
  }

  /**
   * Takes one token from the player's and the region's bucket on the home
   * shard; 429 `rate_limited` / `region_rate_limited` with `retry_after`
   * when either is empty, StoreUnavailable when Redis cannot answer.
   */
  async take(shardId: string, userId: string, region: string): Promise<void> {
    const l = this.byShard.get(shardId);
    if (!l) throw new Error(`no limiter for shard ${shardId}`);
    const [user, reg] = await Promise.allSettled([l.user.consume(userId), l.region.consume(region)]);
    for (const [r, code] of [[user, 'rate_limited'], [reg, 'region_rate_limited']] as const) {
      if (r.status === 'fulfilled') continue;
      if (r.reason instanceof RateLimiterRes) {
        const retryAfter = Math.max(1, Math.ceil(r.reason.msBeforeNext / 1000));
        throw new AppError(code, code === 'rate_limited' ? 'too many writes for this player' : `too many writes in region ${region}`, {
          retry_after: retryAfter,
        });
      }
      // The limiter refuses at once while the shard's client is not ready.
      throw r.reason instanceof StoreUnavailable ? r.reason : new StoreUnavailable('redis', shardId, false, { cause: r.reason });
    }
  }
}
