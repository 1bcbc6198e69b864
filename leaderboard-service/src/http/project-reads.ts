/**
 * A project's reads per second: its plan's `reads_per_s` (sql/010_plans.sql)
 * over the whole installation, every replica counting in the same place (a
 * rate-limiter-flexible counter on the shard the project's scope hashes to,
 * under the project's keys: `lb:{shard}:p:<tenant>/<project>:rl:reads:...`),
 * in front of the gateways' per-address read limit. Over it, 429
 * `project_rate_limited` with `retry_after`; once a window is used up, each
 * replica refuses the rest of it from memory, so a project flooding reads
 * costs the shard nothing more. A plan with no read limit (plan `default`)
 * costs nothing at all: no counter is looked at.
 *
 * What counts as a read: every request of the project's data that is not a
 * score write or an administration call: the hot path's GET routes (tops,
 * ranks, around, periods, live subscriptions) and POST ranks, and the
 * express app's GETs of boards and history (see app.ts and routes/).
 */
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { AppError, projectScope, type ProjectLimits, type ProjectRef, type ShardRouter } from '@lb/common/contracts';
import type { ShardStores } from '../redis/shard-store.js';

/** The window a plan's reads per second are counted in. */
const WINDOW_S = 1;

export class ProjectReads {
  /** By project scope, with the limit it counts to (a plan change makes a new one). */
  private readonly limiters = new Map<string, { points: number; limiter: RateLimiterRedis }>();

  constructor(
    private readonly router: ShardRouter,
    private readonly stores: ShardStores,
  ) {}

  /** Counts one read of `project`; 429 `project_rate_limited` past its plan's reads per second. */
  async admit(project: ProjectRef, limits: ProjectLimits): Promise<void> {
    if (limits.readsPerS <= 0) return;
    const scope = projectScope(project);
    try {
      await this.limiter(project, scope, limits.readsPerS).consume(scope);
    } catch (e) {
      if (!(e instanceof RateLimiterRes)) throw e;
      throw new AppError('project_rate_limited', `too many reads for project ${scope} (plan ${limits.plan}: ${limits.readsPerS} a second)`, {
        retry_after: Math.max(1, Math.ceil(e.msBeforeNext / 1000)),
      });
    }
  }

  private limiter(project: ProjectRef, scope: string, points: number): RateLimiterRedis {
    const known = this.limiters.get(scope);
    if (known?.points === points) return known.limiter;
    const store = this.stores.get(this.router.hashShard(scope).id);
    const limiter = new RateLimiterRedis({
      storeClient: store.limiterClient(),
      useRedisPackage: true,
      rejectIfRedisNotReady: true,
      keyPrefix: `${store.keys.project(project).rateLimitPrefix}:reads`,
      points,
      duration: WINDOW_S,
      // The first refusal of a window blocks the rest of it in this replica's memory.
      inMemoryBlockOnConsumed: points + 1,
      // The shard down: each replica counts alone until it is back.
      insuranceLimiter: new RateLimiterMemory({ keyPrefix: `${scope}:reads`, points, duration: WINDOW_S }),
    });
    this.limiters.set(scope, { points, limiter });
    return limiter;
  }
}
