/**
 * The production build, end to end: `npm run build` compiles every
 * production workspace into dist/ with its assets, and the compiled services
 * (no tsx, no TypeScript sources: what the image runs) serve through nginx.
 *
 * The other end-to-end tests run the sources (`code: 'source'`) so that they
 * never depend on a fresh build; this one is the check that what ships works.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { findBinary } from '@lb/devtools/infra';
import { uniqueId } from '@lb/devtools/testing';
import { REPO_ROOT } from '../scripts/stack/paths.js';
import { startStack, type Stack } from '../scripts/stack/stack.js';
import { call, eventually, post } from './support/e2e.js';

const run = promisify(execFile);
const missing = (['redis-server', 'postgres', 'initdb', 'nginx'] as const).filter((b) => !findBinary(b));

const ENTRY_POINTS = [
  'common/dist/contracts/index.js',
  'common/dist/platform/index.js',
  'common/dist/migrate-cli.js',
  'leaderboard-service/dist/index.js',
  'worker-service/dist/index.js',
  'api-gateway/dist/index.js',
];

/** Every `.lua` file under `dir`, as paths relative to it. */
function luaFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.lua'))
    .sort();
}

/** The command line of a running process. */
function cmdline(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
}

describe('the production build, end to end', function () {
  this.timeout(180_000);

  it('when npm run build runs, then every workspace has its compiled entry points and the Lua scripts beside the module that reads them', async () => {
    await run('npm', ['run', 'build'], { cwd: REPO_ROOT, maxBuffer: 16 * 1024 * 1024 });
    for (const entry of ENTRY_POINTS) expect(existsSync(join(REPO_ROOT, entry)), entry).to.equal(true);
    const src = join(REPO_ROOT, 'leaderboard-service/src/redis/lua');
    const dist = join(REPO_ROOT, 'leaderboard-service/dist/redis/lua');
    const lua = luaFiles(src);
    expect(lua).to.include(join('includes', 'contract.lua'));
    expect(luaFiles(dist)).to.deep.equal(lua);
    for (const f of lua) expect(readFileSync(join(dist, f), 'utf8'), f).to.equal(readFileSync(join(src, f), 'utf8'));
    // The live page: Vite's bundle, whose index.html loads hashed files that exist.
    const page = readFileSync(join(REPO_ROOT, 'web/dist/index.html'), 'utf8');
    const assets = [...page.matchAll(/(?:src|href)="\/(assets\/[^"]+)"/g)].map((m) => m[1]!);
    expect(assets.some((a) => a.endsWith('.js'))).to.equal(true);
    expect(assets.some((a) => a.endsWith('.css'))).to.equal(true);
    for (const a of assets) expect(existsSync(join(REPO_ROOT, 'web/dist', a)), a).to.equal(true);
    expect(existsSync(join(REPO_ROOT, 'web/dist/.built'))).to.equal(true);
  });

  it('when a build is older than its sources, then build --if-stale rebuilds it; when it is fresh, then it does nothing', async () => {
    const stamp = join(REPO_ROOT, 'worker-service/dist/.built');
    const ifStale = () => run(process.execPath, ['scripts/build.mjs', '--if-stale'], { cwd: REPO_ROOT });
    expect((await ifStale()).stderr).to.equal('');
    // Older than any source file: as if the sources had been edited since.
    utimesSync(stamp, new Date(0), new Date(0));
    const rebuilt = await ifStale();
    expect(rebuilt.stderr).to.match(/build: worker-service not built or older than the sources/);
    expect(statSync(stamp).mtimeMs).to.be.greaterThan(Date.now() - 60_000);
    expect((await ifStale()).stderr).to.equal('');
    // The page alone (what a stack of the sources builds): only web/dist is rebuilt.
    const webStamp = join(REPO_ROOT, 'web/dist/.built');
    utimesSync(webStamp, new Date(0), new Date(0));
    const web = await run(process.execPath, ['scripts/build.mjs', '--if-stale', '--web'], { cwd: REPO_ROOT });
    expect(web.stderr).to.match(/build: web \(the live page\) not built or older than its sources/);
    expect(statSync(webStamp).mtimeMs).to.be.greaterThan(Date.now() - 60_000);
    expect((await ifStale()).stderr).to.equal('');
  });

  describe('the compiled services in a stack', function () {
    let dataDir: string | undefined;
    let stack: Stack | undefined;

    before(async function () {
      if (missing.length > 0) {
        console.log(`      (skipped: ${missing.join(', ')} not installed; npm test installs them via scripts/bootstrap.mjs)`);
        this.skip();
      }
      dataDir = mkdtempSync(join(tmpdir(), 'lb-build-'));
      stack = await startStack({
        dataDir,
        code: 'dist',
        ports: 'ephemeral',
        replicas: 1,
        gateways: 1,
        workers: 1,
        postgresFast: true,
        env: { LOG_LEVEL: 'warn', ACCESS_LOG: 'false' },
        log: () => undefined,
      });
    });

    after(async function () {
      this.timeout(90_000);
      await stack?.stop();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    });

    it('when started with code dist, then each Node service runs its dist/index.js with plain node, without tsx', () => {
      const expected: Record<string, string> = {
        'leaderboard-service-1': 'leaderboard-service/dist/index.js',
        'worker-service-1': 'worker-service/dist/index.js',
        'api-gateway-1': 'api-gateway/dist/index.js',
      };
      for (const [name, entry] of Object.entries(expected)) {
        const args = cmdline(stack!.component(name).pid!);
        expect(args.at(-1), name).to.equal(join(REPO_ROOT, entry));
        // No tsx, and Node's own type stripping off: serving proves every module it loaded is compiled.
        expect(args.join(' '), name).not.to.match(/tsx|--conditions|--import/);
        expect(args, name).to.include('--no-strip-types');
      }
    });

    it('when a player registers, writes a score and reads /top through nginx, then the compiled services answer and the worker persists the event', async () => {
      const userId = uniqueId('build');
      const reg = await post(`${stack!.url}/auth/register`, { user_id: userId, name: 'Built', region: 'EU', password: 'correct horse battery' });
      expect(reg.status, JSON.stringify(reg.body)).to.equal(201);
      const write = await post(`${stack!.url}/score/update`, { score: 4242 }, { token: reg.body.token as string });
      expect(write.status, JSON.stringify(write.body)).to.equal(200);
      const top = await call(`${stack!.url}/top?region=EU&limit=10`);
      expect(top.status).to.equal(200);
      expect(top.body.rows).to.deep.include({ rank: 1, user_id: userId, name: 'Built', score: 4242 });
      // The write-behind path: the compiled worker wrote the event to Postgres.
      await eventually(
        async () => {
          const h = await call(`${stack!.url}/history/${userId}`);
          return h.status === 200 && (h.body.events as Array<{ score: number }>).some((e) => e.score === 4242) ? true : undefined;
        },
        30_000,
        'the score event in /history',
      );
    });
  });
});
