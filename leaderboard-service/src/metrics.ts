/**
 * The leaderboard-service's metrics (names in @lb/common's METRIC): HTTP by
 * route template, writes by region and outcome, the top-page cache, Redis
 * and Postgres calls per shard, relay envelope sizes, and the process
 * defaults. With METRICS_PORT=0 `enabled` is false and the recorders are
 * left out of the hot path altogether (callers test {@link ServiceMetrics.enabled}).
 */
import { toAppError } from '@lb/common/contracts';
import {
  Children,
  HttpMetrics,
  METRIC,
  Metrics,
  pgCallMetrics,
  redisCallMetrics,
  SIZE_BUCKETS,
  WRITE_ACCEPTED,
  type CallMetrics,
  type Counter,
  type Histogram,
} from '@lb/common/platform';
import type { TopCacheCounters } from './leaderboard/top-cache.js';
import type { LiveCounters } from './live/publisher.js';

export class ServiceMetrics {
  readonly registry: Metrics;
  readonly http: HttpMetrics;
  readonly redis: CallMetrics;
  readonly pg: CallMetrics;
  readonly topCache: TopCacheCounters;
  /** `lb_live_channels{kind}` and `lb_live_publications_total{kind}` (kind = top | me). */
  readonly live: LiveCounters;
  private readonly writes: Children<Counter>;
  private readonly envelopes: Children<Histogram>;

  constructor(enabled: boolean, regions: readonly string[]) {
    this.registry = new Metrics(enabled, 'leaderboard-service');
    const m = this.registry;
    this.http = new HttpMetrics(m);
    this.redis = redisCallMetrics(m);
    this.pg = pgCallMetrics(m);
    this.topCache = {
      hits: m.counter(METRIC.topCacheHits, 'Top-page reads served from memory.'),
      misses: m.counter(METRIC.topCacheMisses, 'Top-page reads that loaded the page from Redis (or waited for a load under way).'),
      invalidations: m.counter(METRIC.topCacheInvalidations, 'Cached top pages dropped because a write changed them (or a shard subscription was lost).'),
    };
    const liveChannels = m.gauge(METRIC.liveChannels, 'Live channels this replica publishes (nginx holds their streams), by kind: top (a board\'s top N) or me (a player\'s card).', ['kind']);
    const livePublications = m.counter(METRIC.livePublications, 'Messages this replica published to nginx\'s push module (one per changed channel, whatever its subscribers), by kind.', ['kind']);
    this.live = {
      channels: (kind, delta) => liveChannels.inc({ kind }, delta),
      published: (kind) => livePublications.inc({ kind }),
    };
    if (enabled) for (const kind of ['top', 'me']) liveChannels.set({ kind }, 0), livePublications.inc({ kind }, 0);
    this.writes = new Children(m.counter(METRIC.writes, 'Score writes by the player\'s region and outcome: accepted, or the error code they were refused with.', ['region', 'outcome']));
    this.envelopes = new Children(m.histogram(METRIC.envelopeEvents, 'Events per queue job the relay enqueued (1 = a job of its own, more = an envelope), by shard.', ['shard'], SIZE_BUCKETS));
    this.regions = new Set(regions);
    // Series that exist from the start, so rate() sees their first increment.
    if (enabled) for (const r of regions) for (const o of [WRITE_ACCEPTED, 'rate_limited', 'queue_full']) this.writes.get(r, o).inc(0);
  }

  private readonly regions: Set<string>;

  get enabled(): boolean {
    return this.registry.enabled;
  }

  /** Counts a write's outcome once it settles; returns the same promise. */
  write<T>(region: string, p: Promise<T>): Promise<T> {
    if (!this.enabled) return p;
    return p.then(
      (v) => {
        this.writes.get(this.regionLabel(region), WRITE_ACCEPTED).inc();
        return v;
      },
      (e: unknown) => {
        this.refused(region, e);
        throw e;
      },
    );
  }

  /** Counts a write refused before it reached the writer (the route's own checks: a score out of range, a bad field...). */
  refused(region: string, err: unknown): void {
    if (this.enabled) this.writes.get(this.regionLabel(region), toAppError(err).code).inc();
  }

  private regionLabel(region: string): string {
    return this.regions.has(region) ? region : 'other';
  }

  /** What the relay reports: envelope sizes and the enqueue's Redis call. */
  relay(): { envelope(shard: string, events: number): void; calls: CallMetrics } | undefined {
    if (!this.enabled) return undefined;
    return { envelope: (shard, events) => this.envelopes.get(shard).observe(events), calls: this.redis };
  }
}
