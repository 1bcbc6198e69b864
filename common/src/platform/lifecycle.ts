/**
 * Process lifecycle shared by the services' entry points: run `main`, map a
 * ConfigError to exit 2 with the key's name, and on SIGTERM/SIGINT run the
 * shutdown once, bounded by a deadline.
 */
import type { Server } from 'node:http';
import { ConfigError } from './config.js';
import type { Logger } from './logger.js';

/** Runs a service's main; start-up failures exit 2 (configuration) or 1. */
export function runService(name: string, main: () => Promise<void>): void {
  main().catch((e: unknown) => {
    if (e instanceof ConfigError) {
      process.stderr.write(`${name}: ${e.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`${name}: failed to start: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}

/**
 * Calls `stop` once on the first SIGTERM or SIGINT and exits 0 when it
 * resolves; exits 1 if it fails or takes longer than `timeoutMs`.
 */
export function onShutdown(log: Logger, stop: () => Promise<void>, timeoutMs = 10_000): void {
  let stopping = false;
  const run = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal });
    const force = setTimeout(() => {
      log.error('shutdown timed out', { timeoutMs });
      process.exit(1);
    }, timeoutMs);
    force.unref();
    try {
      await stop();
    } catch (e) {
      log.error('shutdown failed', { err: e as Error });
      process.exit(1);
    }
    process.exit(0);
  };
  process.on('SIGTERM', () => void run('SIGTERM'));
  process.on('SIGINT', () => void run('SIGINT'));
}

/**
 * Stops an HTTP server and waits for in-flight requests. `server.close()`
 * alone keeps serving a client that keeps its keep-alive connections busy
 * (a gateway, nginx), so every answer from now on closes its connection
 * (`markClosing` is called first) and idle sockets are swept until done.
 */
export async function closeServer(server: Server, markClosing: () => void): Promise<void> {
  markClosing();
  const sweep = setInterval(() => server.closeIdleConnections(), 100);
  try {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  } finally {
    clearInterval(sweep);
  }
}
