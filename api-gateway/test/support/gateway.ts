/**
 * Starts a real api-gateway app on port 0 in front of the given upstreams,
 * with small timeouts so failover tests run fast.
 */
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { createLogger, type LogLevel } from '@lb/common/platform';
import { TEST_SECRET } from '../../../leaderboard-service/test/support/service.js';
import { buildServer } from '../../src/app.js';
import { loadConfig, type GatewayConfig } from '../../src/config.js';
import { createDeps, type Deps } from '../../src/deps.js';

export { TEST_SECRET };

export interface TestGateway {
  url: string;
  config: GatewayConfig;
  deps: Deps;
  /** Access-log lines written so far (when ACCESS_LOG=true). */
  accessLog: string[];
  stop(): Promise<void>;
}

export async function startGateway(upstreams: string[], env: Record<string, string> = {}): Promise<TestGateway> {
  const config = loadConfig({
    LEADERBOARD_SERVICE_URLS: upstreams.join(','),
    JWT_SECRET: TEST_SECRET,
    ACCESS_LOG: 'false',
    LOG_LEVEL: 'error',
    PORT: '0',
    UPSTREAM_TIMEOUT_MS: '400',
    UPSTREAM_COOLOFF_MS: '150',
    PROBE_INTERVAL_MS: '40',
    ...env,
  });
  const accessLog: string[] = [];
  const stream = new PassThrough();
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => accessLog.push(...chunk.split('\n').filter(Boolean)));
  const deps = createDeps(config, { log: createLogger('gateway-test', (process.env.GATEWAY_TEST_LOG_LEVEL as LogLevel | undefined) ?? 'error'), accessLogStream: stream });
  const { server } = buildServer(config, deps);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    config,
    deps,
    accessLog,
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await deps.close();
    },
  };
}

/** Polls `check` every 20 ms until it returns true or `ms` pass. */
export async function eventually(check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
