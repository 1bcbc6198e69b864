/**
 * Real leaderboard-service replicas for gateway tests: replicas sharing one
 * key prefix (so any replica serves the same boards), each with its own
 * INSTANCE_ID, and replicas on a server the test controls.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger } from '@lb/common/platform';
import { uniqueId } from '@lb/devtools/testing';
import { buildServer } from '../../../leaderboard-service/src/app.js';
import type { ServiceConfig } from '../../../leaderboard-service/src/config.js';
import { createDeps } from '../../../leaderboard-service/src/deps.js';
import { startService, type TestService } from '../../../leaderboard-service/test/support/service.js';

/** Starts `n` replicas over the same data (startService with a shared KEY_PREFIX). */
export async function startReplicas(n = 3): Promise<TestService[]> {
  const prefix = `g${uniqueId('').replace(/[^a-z0-9]/gi, '').toLowerCase().slice(-10)}`;
  const out: TestService[] = [];
  for (let i = 1; i <= n; i++) out.push(await startService({ KEY_PREFIX: prefix, INSTANCE_ID: `replica-${i}` }));
  return out;
}

export interface ControlledReplica {
  url: string;
  port: number;
  /**
   * Stops like a dying process: the listener and every connection close at
   * once. (A graceful `server.close()` is no stop under load: Node keeps
   * serving requests on busy kept-alive connections until they go idle.)
   */
  kill(): Promise<void>;
}

/** Starts a replica with `config` on `port` (0 = any), e.g. again on the port of one that was killed. */
export async function startControlledReplica(config: ServiceConfig, port = 0): Promise<ControlledReplica> {
  const deps = await createDeps(config, { log: createLogger('test', 'error') });
  const server: Server = buildServer(config, deps);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const actual = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${actual}`,
    port: actual,
    async kill() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await deps.close();
    },
  };
}
