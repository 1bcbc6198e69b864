/**
 * Optional GET /health of the worker-service: per-shard consumer state,
 * counters and a Redis and Postgres round trip; 200 while every consumer runs
 * and reaches both, 503 otherwise.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { WorkerService } from './service.js';

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Serves GET /health on host:port (0 = any free port; the chosen one is in `port`). */
export async function startHealthServer(service: Pick<WorkerService, 'health'>, host: string, port: number): Promise<HealthServer> {
  const server: Server = createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/health') {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not_found', message: 'GET /health only' }));
      return;
    }
    try {
      const status = await service.health();
      res
        .writeHead(status.ok ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' })
        .end(JSON.stringify({ ...status, pid: process.pid, uptimeS: Math.round(process.uptime()) }));
    } catch (e) {
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'internal', message: (e as Error).message }));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
