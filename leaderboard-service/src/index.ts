/**
 * leaderboard-service entry point: load config, connect, listen; on SIGTERM
 * or SIGINT stop accepting, drain, and close connections in reverse order.
 */
import 'dotenv/config';
import type { AddressInfo } from 'node:net';
import { closeServer, initTracing, onShutdown, runService, startMetricsServer } from '@lb/common/platform';
import { buildServer } from './app.js';
import { loadConfig } from './config.js';
import { createDeps } from './deps.js';

runService('leaderboard-service', async () => {
  const config = loadConfig();
  // First: the relays' queues are built with BullMQ telemetry when tracing is on.
  const stopTracing = initTracing(config);
  const deps = await createDeps(config);
  const server = buildServer(config, deps);
  server.listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  deps.log.info('listening', { host: config.host, port, shards: config.topology.shards.map((s) => s.id) });
  const metricsServer = config.metricsPort > 0 ? await startMetricsServer(deps.metrics.registry, config.metricsHost, config.metricsPort, deps.log) : undefined;
  if (metricsServer) deps.log.info('metrics listening', { host: config.metricsHost, port: config.metricsPort });

  onShutdown(deps.log, async () => {
    await closeServer(server, () => {
      server.on('request', (_req, res: import('node:http').ServerResponse) => {
        if (!res.headersSent) res.setHeader('Connection', 'close');
      });
    });
    await deps.close();
    metricsServer?.close();
    // Flushes the spans not yet exported.
    await stopTracing();
  });
});
