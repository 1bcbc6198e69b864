/**
 * Wires the gateway's dependencies from its config: the replica pool, the
 * forwarder (keep-alive agents), the background prober. `close` stops them.
 */
import type { Writable } from 'node:stream';
import { createLogger, type Logger } from '@lb/common/platform';
import type { GatewayConfig } from './config.js';
import { Forwarder } from './forwarder.js';
import { ReadLimiter } from './http/rate-limit.js';
import { GatewayMetrics } from './metrics.js';
import { HealthProber } from './prober.js';
import { UpstreamPool } from './upstreams.js';

export interface Deps {
  log: Logger;
  /** Prometheus metrics (recorders off when METRICS_PORT=0). */
  metrics: GatewayMetrics;
  pool: UpstreamPool;
  forwarder: Forwarder;
  prober: HealthProber;
  limiter: ReadLimiter;
  /** Where access-log lines go (stdout unless a test captures them). */
  accessLogStream: Writable;
  close(): Promise<void>;
}

export interface DepsOptions {
  log?: Logger;
  accessLogStream?: Writable;
}

/** Builds the dependencies and starts the health prober. */
export function createDeps(config: GatewayConfig, opts: DepsOptions = {}): Deps {
  const log = opts.log ?? createLogger(config.gatewayId, config.logLevel);
  const pool = new UpstreamPool(config.upstreamUrls, config.upstreamCooloffMs);
  const metrics = new GatewayMetrics(config.metricsPort > 0, pool);
  const forwarder = new Forwarder({
    metrics: metrics.enabled ? metrics : undefined,
    pool,
    timeoutMs: config.upstreamTimeoutMs,
    maxSockets: config.upstreamMaxSockets,
    log: log.child('proxy'),
  });
  const prober = new HealthProber(pool, {
    intervalMs: config.probeIntervalMs,
    timeoutMs: config.upstreamTimeoutMs,
    log: log.child('probe'),
  });
  prober.start();
  return {
    log,
    metrics,
    pool,
    forwarder,
    prober,
    limiter: new ReadLimiter(config.readRateLimitCount, config.readRateLimitWindowMs),
    accessLogStream: opts.accessLogStream ?? process.stdout,
    async close() {
      prober.stop();
      forwarder.close();
    },
  };
}
