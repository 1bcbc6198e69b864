/**
 * api-gateway entry point: load config, wire, listen; on SIGTERM or SIGINT
 * stop accepting, let in-flight requests finish, close upstream sockets and
 * exit 0.
 */
import 'dotenv/config';
import type { AddressInfo } from 'node:net';
import { ConfigError } from '@lb/common';
import { buildServer } from './app.js';
import { loadConfig } from './config.js';
import { createDeps } from './deps.js';

async function main(): Promise<void> {
  const config = loadConfig();
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

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    deps.log.info('stopping', { signal });
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    // Answers from now on close their connections (see app.ts); close()
    // stops accepting and drops idle connections, in-flight requests finish.
    // close() drops only the connections idle at that moment: one whose last
    // answer was already under way goes idle later, hence the sweep.
    gateway.drain();
    const sweep = setInterval(() => server.closeIdleConnections(), 100);
    await new Promise<void>((resolve) => server.close(() => resolve()));
    clearInterval(sweep);
    await deps.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((e: unknown) => {
  if (e instanceof ConfigError) {
    process.stderr.write(`api-gateway: ${e.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`api-gateway: failed to start: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
