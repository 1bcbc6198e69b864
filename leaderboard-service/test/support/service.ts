/**
 * Starts a real leaderboard-service app on port 0 against the harness'
 * Redis shards and Postgres, with its own key prefix so test files do not
 * see each other's boards.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { getInfra, uniqueId } from '@lb/devtools/testing';
import { type Topology } from '@lb/common/contracts';
import { createLogger, topologyJson } from '@lb/common/platform';
import { buildServer } from '../../src/app.js';
import { loadConfig, type ServiceConfig } from '../../src/config.js';
import { createDeps, type Deps, type DepsOptions } from '../../src/deps.js';

export const TEST_SECRET = 'test-secret-test-secret-test-secret-0123';

export interface TestService {
  url: string;
  config: ServiceConfig;
  deps: Deps;
  topology: Topology;
  stop(): Promise<void>;
}

export async function startService(env: Record<string, string> = {}, opts: DepsOptions = {}): Promise<TestService> {
  const infra = await getInfra();
  const config = loadConfig({
    TOPOLOGY: topologyJson(infra.topology),
    JWT_SECRET: TEST_SECRET,
    KEY_PREFIX: `t${uniqueId('').replace(/[^a-z0-9]/gi, '').toLowerCase().slice(-10)}`,
    ACCESS_LOG: 'false',
    LOG_LEVEL: 'error',
    ARGON2_MEMORY_KIB: '256',
    ARGON2_TIME_COST: '1',
    PORT: '0',
    USER_RATE_LIMIT_COUNT: '1000000',
    ...env,
  });
  const deps = await createDeps(config, { log: createLogger('test', 'error'), ...opts });
  const server: Server = buildServer(config, deps);
  await new Promise<void>((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    config,
    deps,
    topology: infra.topology,
    async stop() {
      // Open live streams would keep close() waiting: their connections are cut.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await deps.close();
    },
  };
}

export interface Reply<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/** A tiny JSON client over fetch. */
export class Client {
  constructor(readonly base: string) {}

  async request<T = any>(method: string, path: string, opts: { body?: unknown; raw?: string; token?: string; headers?: Record<string, string> } = {}): Promise<Reply<T>> {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    let body: string | undefined;
    if (opts.raw !== undefined) {
      body = opts.raw;
      headers['content-type'] ??= 'application/json';
    } else if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] = 'application/json';
    }
    const res = await fetch(this.base + path, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON: keep text */
    }
    return { status: res.status, body: parsed as T, headers: res.headers };
  }

  get<T = any>(path: string, opts?: { token?: string; headers?: Record<string, string> }) {
    return this.request<T>('GET', path, opts);
  }

  post<T = any>(path: string, body?: unknown, opts: { token?: string; headers?: Record<string, string> } = {}) {
    return this.request<T>('POST', path, { body, ...opts });
  }

  /** Registers a player and returns the token. */
  async register(user_id: string, region: string, extra: Record<string, unknown> = {}): Promise<string> {
    const r = await this.post('/auth/register', { user_id, name: `Name ${user_id}`, region, password: 'correct horse', ...extra });
    if (r.status !== 201) throw new Error(`register ${user_id}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.token as string;
  }
}
