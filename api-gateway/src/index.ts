/**
 * api-gateway entry point: load config, wire, listen; on SIGTERM or SIGINT
 * stop accepting, let in-flight requests finish, close upstream sockets and
 * exit 0.
 */
import 'dotenv/config';
import type { AddressInfo } from 'node:net';
import { closeServer, initTracing, onShutdown, runService, startMetricsServer } from '@lb/common/platform';
import { buildServer } from './app.js';
import { loadConfig } from './config.js';
import { createDeps } from './deps.js';

runService('api-gateway', async () => {
  const config = loadConfig();
  // First: what is built next (the forwarder) checks whether tracing is on.
  const stopTracing = initTracing(config);
  const deps = createDeps(config);
  const gateway = buildServer(config, deps);
  const { server } = gateway;
  server.listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  deps.log.info('listening', { host: config.host, port, upstreams: config.upstreamUrls });
  const metricsServer = config.metricsPort > 0 ? await startMetricsServer(deps.metrics.registry, config.metricsHost, config.metricsPort, deps.log) : undefined;
  if (metricsServer) deps.log.info('metrics listening', { host: config.metricsHost, port: config.metricsPort });

  onShutdown(deps.log, async () => {
    // Answers from now on close their connections (see app.ts); in-flight requests finish.
    await closeServer(server, () => gateway.drain());
    await deps.close();
    metricsServer?.close();
    // Flushes the spans not yet exported.
    await stopTracing();
  });
});
