/**
 * The gateway as a process (src/index.ts): start-up config errors and a
 * graceful stop under keep-alive load.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { join } from 'node:path';
import { expect } from 'chai';
import { SOURCE_NODE_ARGS } from '@lb/devtools/infra';
import { findRepoRoot } from '@lb/devtools/testing';
import { TEST_SECRET } from './support/gateway.js';
import { startEcho, type TestUpstream } from './support/upstreams.js';

function startProcess(env: Record<string, string>): { child: ChildProcess; stderr: () => string; exited: Promise<number | null> } {
  const root = findRepoRoot();
  const child = spawn(process.execPath, [...SOURCE_NODE_ARGS, join(root, 'api-gateway/src/index.ts')], {
    cwd: join(root, 'api-gateway'),
    env: { PATH: process.env.PATH ?? '', METRICS_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  child.stdout!.resume();
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stderr: () => err, exited };
}

async function portOf(stderr: () => string, ms = 15_000): Promise<number> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const m = /"msg":"listening".*?"port":(\d+)/.exec(stderr());
    if (m) return Number(m[1]);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`gateway did not start: ${stderr()}`);
}

describe('api-gateway process', () => {
  let echo: TestUpstream;
  before(async () => {
    echo = await startEcho();
  });
  after(async () => echo?.stop());

  it('when a config value is invalid, then the process exits 2 naming the key', async () => {
    const p = startProcess({ JWT_SECRET: 'short', LEADERBOARD_SERVICE_URLS: echo.url });
    expect(await p.exited).to.equal(2);
    expect(p.stderr()).to.include('JWT_SECRET');
  });

  it('when SIGTERM arrives under keep-alive load, then in-flight requests finish, connections close and it exits 0', async () => {
    // An upstream that holds `/top?hold` until released: a request is surely
    // in flight when the signal arrives.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let held = false;
    const upstream = http.createServer((req, res) => {
      const answer = () => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 });
        res.end('{}');
      };
      if (req.url?.startsWith('/top?hold')) {
        held = true;
        void gate.then(answer);
      } else answer();
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const upstreamUrl = `http://127.0.0.1:${(upstream.address() as { port: number }).port}`;
    const p = startProcess({ JWT_SECRET: TEST_SECRET, LEADERBOARD_SERVICE_URLS: upstreamUrl, PORT: '0', LOG_LEVEL: 'info', ACCESS_LOG: 'true' });
    const until = async (what: string, check: () => boolean) => {
      for (let i = 0; i < 300 && !check(); i++) await new Promise((r) => setTimeout(r, 20));
      if (!check()) throw new Error(`timed out waiting for ${what}: ${p.stderr()}`);
    };
    try {
      const port = await portOf(p.stderr);
      const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
      // Its own keep-alive socket: a client that asks to keep the connection.
      const holdAgent = new http.Agent({ keepAlive: true });
      const statuses: number[] = [];
      let stopAll = false;
      /** Resolves false when the request failed: refused (listener closed) or reset (closed as it was reused). */
      const get = (path = '/top') =>
        new Promise<{ status: number; connection: string | undefined } | false>((resolve) => {
          const req = http.get({ host: '127.0.0.1', port, path, agent: path === '/top' ? agent : holdAgent }, (res) => {
            statuses.push(res.statusCode!);
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode!, connection: res.headers.connection }));
          });
          req.on('error', () => resolve(false));
        });
      // Each client loop ends at its own first failed request.
      const loop = async () => {
        while (!stopAll && (await get()));
      };
      const loops = Promise.all([loop(), loop(), loop(), loop()]);
      await new Promise((r) => setTimeout(r, 400));
      const inFlight = get('/top?hold=1');
      await until('the held request to reach the upstream', () => held);
      p.child.kill('SIGTERM');
      await until('the gateway to start stopping', () => p.stderr().includes('"msg":"stopping"'));
      release();
      const last = await inFlight;
      const code = await p.exited;
      stopAll = true;
      await loops;
      agent.destroy();
      holdAgent.destroy();
      expect(code).to.equal(0);
      expect(statuses.length).to.be.greaterThan(20);
      expect(statuses.filter((s) => s !== 200)).to.deep.equal([]);
      expect(last, 'the request in flight at SIGTERM is answered').to.deep.equal({ status: 200, connection: 'close' });
    } finally {
      p.child.kill('SIGKILL');
      release();
      upstream.closeAllConnections();
      await new Promise((r) => upstream.close(r));
    }
  });
});
