/**
 * worker-service entry point: load config, start one BullMQ worker per
 * consumed shard (and the optional /health endpoint). On SIGTERM or SIGINT
 * stop fetching, let the batch in hand commit and its jobs complete, close
 * the pools, exit 0.
 */
import 'dotenv/config';
import { initTracing, onShutdown, runService, startMetricsServer } from '@lb/common/platform';
import { loadConfig } from './config.js';
import { startHealthServer, type HealthServer } from './health.js';
import { startWorkerService } from './service.js';

/** A shutdown taking longer than this (a shard unreachable mid-close) exits 1. */
const SHUTDOWN_TIMEOUT_MS = 30_000;

runService('worker-service', async () => {
  const config = loadConfig();
  // First: the consumers' workers are built with BullMQ telemetry when tracing is on.
  const stopTracing = initTracing(config);
  const service = await startWorkerService(config);
  const log = service.log;
  let health: HealthServer | undefined;
  if (config.healthPort !== undefined) health = await startHealthServer(service, config.healthHost, config.healthPort);
  const metricsServer = config.metricsPort > 0 ? await startMetricsServer(service.metrics.registry, config.metricsHost, config.metricsPort, log) : undefined;
  log.info('started', {
    pid: process.pid,
    shards: config.shards,
    batchSize: config.batchSize,
    batchMaxWaitMs: config.batchMaxWaitMs,
    concurrency: config.concurrency,
    // Retry policy the producers should put on score jobs (BullMQ keeps it per job).
    jobPolicy: config.jobPolicy,
    healthPort: health?.port,
    metricsPort: metricsServer ? config.metricsPort : undefined,
  });

  onShutdown(
    log,
    async () => {
      await service.close();
      await health?.close();
      metricsServer?.close();
      // Flushes the spans not yet exported.
      await stopTracing();
      log.info('stopped', { shards: service.status().shards.map((s) => ({ shard: s.shard, ...s.jobs })) });
    },
    SHUTDOWN_TIMEOUT_MS,
  );
});
