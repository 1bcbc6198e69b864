/**
 * worker-service entry point: load config, start one BullMQ worker per
 * consumed shard (and the optional /health endpoint). On SIGTERM or SIGINT
 * stop fetching, let the batch in hand commit and its jobs complete, close
 * the pools, exit 0.
 */
import 'dotenv/config';
import { ConfigError } from '@lb/common';
import { loadConfig } from './config.js';
import { startHealthServer, type HealthServer } from './health.js';
import { startWorkerService } from './service.js';

/** A shutdown taking longer than this (a shard unreachable mid-close) exits 1. */
const SHUTDOWN_TIMEOUT_MS = 30_000;

async function main(): Promise<void> {
  const config = loadConfig();
  const service = await startWorkerService(config);
  const log = service.log;
  let health: HealthServer | undefined;
  if (config.healthPort !== undefined) health = await startHealthServer(service, config.healthHost, config.healthPort);
  log.info('started', {
    pid: process.pid,
    shards: config.shards,
    batchSize: config.batchSize,
    batchMaxWaitMs: config.batchMaxWaitMs,
    concurrency: config.concurrency,
    // Retry policy the producers should put on score jobs (BullMQ keeps it per job).
    jobPolicy: config.jobPolicy,
    healthPort: health?.port,
  });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal });
    const force = setTimeout(() => {
      log.error('shutdown timed out', { timeoutMs: SHUTDOWN_TIMEOUT_MS });
      process.exit(1);
    }, SHUTDOWN_TIMEOUT_MS);
    force.unref();
    try {
      await service.close();
      await health?.close();
    } catch (e) {
      log.error('shutdown failed', { err: e });
      process.exit(1);
    }
    log.info('stopped', { shards: service.status().shards.map((s) => ({ shard: s.shard, ...s.jobs })) });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((e: unknown) => {
  if (e instanceof ConfigError) {
    process.stderr.write(`worker-service: ${e.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`worker-service: failed to start: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
