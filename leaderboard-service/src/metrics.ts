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
import type { ShardConnection } from './redis/connection.js';
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

  /**
   * Replication of each shard behind Sentinel, read from its primary's
   * `INFO replication` at every scrape: `lb_redis_replicas_online{shard}`
   * (replicas in sync with the primary; 0 = the shard refuses writes),
   * `lb_redis_replica_lag_seconds{shard}` (the largest replica's seconds since
   * its last acknowledgement; -1 when none is online), and
   * `lb_redis_failovers_total{shard}` (primaries this replica saw replaced).
   */
  replication(shards: readonly { shard: { id: string }; conn: ShardConnection }[]): void {
    const ha = shards.filter((s) => s.conn.replicated);
    if (!this.enabled || ha.length === 0) return;
    const m = this.registry;
    const lag = m.gauge(METRIC.redisReplicaLag, "The largest lag of a shard's replicas, seconds since its last acknowledgement (-1: no replica online).", ['shard']);
    m.gauge(METRIC.redisReplicas, 'Replicas online and in sync with the shard\'s primary (0: its writes are refused, min-replicas-to-write 1).', ['shard'], async (g) => {
      await Promise.all(
        ha.map(async ({ shard, conn }) => {
          const info = await conn.call(() => conn.client.info('replication')).catch(() => undefined);
          const r = info === undefined ? { online: 0, lag: -1 } : replicasOf(String(info));
          g.set({ shard: shard.id }, r.online);
          lag.set({ shard: shard.id }, r.lag);
        }),
      );
    });
    const failovers = m.counter(METRIC.redisFailovers, "Times this replica saw a shard's primary replaced (a Sentinel failover).", ['shard']);
    for (const { shard, conn } of ha) {
      failovers.inc({ shard: shard.id }, 0);
      conn.redis.onPrimaryChange(() => failovers.inc({ shard: shard.id }));
    }
  }

  /** What the relay reports: envelope sizes and the enqueue's Redis call. */
  relay(): { envelope(shard: string, events: number): void; calls: CallMetrics } | undefined {
    if (!this.enabled) return undefined;
    return { envelope: (shard, events) => this.envelopes.get(shard).observe(events), calls: this.redis };
  }
}

/** Online replicas and their largest lag from `INFO replication` (`slave0:ip=…,port=…,state=online,offset=…,lag=0`). */
export function replicasOf(info: string): { online: number; lag: number } {
  let online = 0;
  let lag = -1;
  for (const m of info.matchAll(/^slave\d+:(.*)$/gm)) {
    const f = Object.fromEntries(m[1]!.trim().split(',').map((kv) => kv.split('=') as [string, string]));
    if (f.state !== 'online') continue;
    online++;
    lag = Math.max(lag, Number(f.lag ?? 0));
  }
  return { online, lag };
}
