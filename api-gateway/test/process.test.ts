/**
 * The gateway as a process (src/index.ts): start-up config errors and a
 * graceful stop under keep-alive load.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { join } from 'node:path';
import { expect } from 'chai';
import { findRepoRoot } from '@lb/common/testing';
import { TEST_SECRET } from './support/gateway.js';
import { startEcho, type TestUpstream } from './support/upstreams.js';

function startProcess(env: Record<string, string>): { child: ChildProcess; stderr: () => string; exited: Promise<number | null> } {
  const root = findRepoRoot();
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'api-gateway/src/index.ts')], {
    cwd: join(root, 'api-gateway'),
    env: { PATH: process.env.PATH ?? '', ...env },
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

  it('when SIGTERM arrives under keep-alive load, then in-flight requests finish, connections close and it exits 0 promptly', async () => {
    const p = startProcess({ JWT_SECRET: TEST_SECRET, LEADERBOARD_SERVICE_URLS: echo.url, PORT: '0', LOG_LEVEL: 'info', ACCESS_LOG: 'true' });
    try {
      const port = await portOf(p.stderr);
      const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
      const statuses: number[] = [];
      let closes = 0;
      let stopAll = false;
      /** Resolves false when the request failed: refused (listener closed) or reset (closed as it was reused). */
      const get = () =>
        new Promise<boolean>((resolve) => {
          const req = http.get({ host: '127.0.0.1', port, path: '/top', agent }, (res) => {
            statuses.push(res.statusCode!);
            if (res.headers.connection === 'close') closes++;
            res.resume();
            res.on('end', () => resolve(true));
          });
          req.on('error', () => resolve(false));
        });
      // Each client loop ends at its own first failed request.
      const loop = async () => {
        while (!stopAll && (await get()));
      };
      const loops = Promise.all([loop(), loop(), loop(), loop()]);
      await new Promise((r) => setTimeout(r, 400));
      const t0 = Date.now();
      p.child.kill('SIGTERM');
      const code = await p.exited;
      const took = Date.now() - t0;
      stopAll = true;
      await loops;
      agent.destroy();
      expect(code).to.equal(0);
      expect(took, 'well before the 10 s forced exit').to.be.below(3000);
      expect(statuses.length).to.be.greaterThan(20);
      expect(statuses.filter((s) => s !== 200)).to.deep.equal([]);
      expect(closes, 'answers while draining close their connection').to.be.greaterThan(0);
    } finally {
      p.child.kill('SIGKILL');
    }
  });
});
