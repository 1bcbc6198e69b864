/**
 * leaderboard-service entry point: load config, connect, listen; on SIGTERM
 * or SIGINT stop accepting, drain, and close connections in reverse order.
 */
import 'dotenv/config';
import type { AddressInfo } from 'node:net';
import { ConfigError } from '@lb/common';
import { buildServer } from './app.js';
import { loadConfig } from './config.js';
import { createDeps } from './deps.js';

async function main(): Promise<void> {
  const config = loadConfig();
  const deps = await createDeps(config);
  const server = buildServer(config, deps);
  server.listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  deps.log.info('listening', { host: config.host, port, shards: config.topology.shards.map((s) => s.id) });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    deps.log.info('stopping', { signal });
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    // server.close() alone waits forever while a gateway keeps its keep-alive
    // connections busy: answer with Connection: close and sweep idle sockets.
    server.on('request', (_req, res: import('node:http').ServerResponse) => {
      if (!res.headersSent) res.setHeader('Connection', 'close');
    });
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
    process.stderr.write(`leaderboard-service: ${e.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`leaderboard-service: failed to start: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
