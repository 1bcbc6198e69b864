/**
 * Background health probes: every PROBE_INTERVAL_MS, each replica that is out
 * of rotation and past its cool-off gets a `GET /health/live`; a 200 puts it
 * back. Liveness, not readiness: a replica answers 503 for what needs a
 * shard that is down, and that is an answer, not a fault of the replica
 * (only refused connections and timeouts take a replica out, see
 * forwarder.ts). Replicas in rotation are never probed: live traffic is
 * their health check.
 */
import http from 'node:http';
import https from 'node:https';
import type { Logger } from '@lb/common/platform';
import type { Upstream, UpstreamPool } from './upstreams.js';

export interface ProberOptions {
  intervalMs: number;
  /** A probe that has not answered in this time counts as failed. */
  timeoutMs: number;
  log: Logger;
}

export class HealthProber {
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Upstream>();

  constructor(
    private readonly pool: UpstreamPool,
    private readonly opts: ProberOptions,
  ) {}

  /** Starts the periodic probe; the timer does not keep the process alive. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Probes every due replica once (at most one probe per replica at a time). */
  async tick(): Promise<void> {
    const due = this.pool.dueForProbe().filter((u) => !this.inFlight.has(u));
    await Promise.all(due.map((u) => this.probe(u)));
  }

  private async probe(u: Upstream): Promise<void> {
    this.inFlight.add(u);
    try {
      const failure = await probeHealth(u.target, this.opts.timeoutMs);
      if (failure === null) {
        if (this.pool.markUp(u)) this.opts.log.info('upstream back in rotation', { upstream: u.url });
      } else {
        this.pool.probeFailed(u, failure);
        this.opts.log.debug('upstream probe failed', { upstream: u.url, reason: failure });
      }
    } finally {
      this.inFlight.delete(u);
    }
  }
}

/** The replica's liveness route. */
export const LIVENESS_PATH = '/health/live';

/**
 * `GET <base>/health/live` on a fresh connection (no keep-alive: a probe must see
 * whether the replica accepts connections now). Resolves null on a 200,
 * otherwise a short reason; never rejects.
 */
export function probeHealth(base: URL, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    const client = base.protocol === 'https:' ? https : http;
    const req = client.request(
      new URL(LIVENESS_PATH, base),
      { method: 'GET', agent: false, headers: { 'user-agent': 'lb-api-gateway-probe' } },
      (res) => {
        res.resume();
        clearTimeout(timer);
        resolve(res.statusCode === 200 ? null : `health check answered ${res.statusCode}`);
      },
    );
    const timer = setTimeout(() => req.destroy(Object.assign(new Error('probe timed out'), { code: 'ETIMEDOUT' })), timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(`health check failed: ${err.code ?? err.message}`);
    });
    req.end();
  });
}
