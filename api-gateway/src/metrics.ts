/**
 * The api-gateway's metrics (names in @lb/common's METRIC): HTTP by route
 * template, upstream attempts by replica and outcome, retries, failovers,
 * each replica's health as the pool sees it, and the process defaults.
 */
import { Children, HttpMetrics, METRIC, Metrics, type Counter } from '@lb/common/platform';
import type { UpstreamPool } from './upstreams.js';

/** How an attempt on a replica ended: answered (headers arrived), refused before sending, timed out, or failed otherwise. */
export type AttemptOutcome = 'answered' | 'connect_failed' | 'timeout' | 'error';

/** What the forwarder reports. */
export interface ForwarderMetrics {
  attempt(replica: string, outcome: AttemptOutcome): void;
  /** An attempt after the first of a request. */
  retry(): void;
  /** A request answered by another replica than the first one tried. */
  failover(): void;
}

export class GatewayMetrics implements ForwarderMetrics {
  readonly registry: Metrics;
  readonly http: HttpMetrics;
  private readonly attempts: Children<Counter>;
  private readonly retries: Counter;
  private readonly failovers: Counter;

  constructor(enabled: boolean, pool: UpstreamPool) {
    const m = (this.registry = new Metrics(enabled, 'api-gateway'));
    this.http = new HttpMetrics(m);
    this.attempts = new Children(m.counter(METRIC.upstreamAttempts, 'Attempts to forward a request to a replica, by replica and outcome (answered, connect_failed, timeout, error).', ['replica', 'outcome']));
    this.retries = m.counter(METRIC.upstreamRetries, 'Attempts after the first of a request (on another replica).');
    this.failovers = m.counter(METRIC.upstreamFailovers, 'Requests answered by another replica than the first one tried.');
    m.gauge(METRIC.replicaUp, 'Whether the gateway has the replica in rotation (1) or out after failures (0).', ['replica'], (g) => {
      for (const u of pool.view()) g.set({ replica: u.url }, u.healthy ? 1 : 0);
    });
  }

  get enabled(): boolean {
    return this.registry.enabled;
  }

  attempt(replica: string, outcome: AttemptOutcome): void {
    this.attempts.get(replica, outcome).inc();
  }
  retry(): void {
    this.retries.inc();
  }
  failover(): void {
    this.failovers.inc();
  }
}
