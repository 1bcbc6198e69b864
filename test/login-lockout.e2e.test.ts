/**
 * The per-address login lockout through nginx, with two client addresses
 * (127.0.0.0/8 all reaches nginx on 127.0.0.1): an address that fails
 * LOGIN_IP_MAX_FAILS logins is refused every login for the window, the
 * right passwords of other players included, while another address logs in
 * as always; the operator's `npm run admin -- login unlock --ip` lifts it.
 *
 * The address counted is the one nginx saw: nginx replaces the client's
 * X-Forwarded-For, the gateways and the replicas trust it (TRUSTED_PROXIES:
 * loopback). Requests go one at a time, so nginx's per-address in-flight
 * limit (limit_conn) never refuses one, and logins are POSTs, which the
 * gateways' per-address read limit does not count: every 429 here is the
 * login guard's `rate_limited`.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { findRepoRoot, uniqueId } from '@lb/devtools/testing';
import type { LoginStatusLine } from '../leaderboard-service/src/admin/login-admin.js';
import { callFrom, closeCallFromAgents, type Reply } from './support/e2e.js';
import { skipUnlessInstalled, startTestStack, type TestStack } from './support/test-stack.js';
import { topologyJson } from '@lb/common/platform';

const PASSWORD = 'correct horse battery';
const LOCKED = '127.0.0.2';
const OTHER = '127.0.0.3';
/** The stack's login settings, which the admin command is given too. */
const SETTINGS = {
  KEY_PREFIX: 'lbx',
  LOGIN_IP_MAX_FAILS: '4',
  // Far above what this test fails per player: only the address counter can lock.
  LOGIN_USER_MAX_FAILS: '50',
  // The shipped window: the lockout cannot end by itself while the test runs.
  LOGIN_FAIL_WINDOW_S: '900',
};

describe('login lockout per client address, end to end through nginx', function () {
  this.timeout(180_000);
  let ts: TestStack | undefined;
  /** The stack's own log (kept quiet). */
  const stackLog: string[] = [];

  before(async function () {
    skipUnlessInstalled(this);
    ts = await startTestStack('lb-lockout-', { metrics: false, env: { LOG_LEVEL: 'warn', ACCESS_LOG: 'false', ...SETTINGS }, log: (l) => stackLog.push(l) });
  });

  after(async function () {
    this.timeout(90_000);
    closeCallFromAgents();
    await ts?.stop();
  });

  const url = (path: string): string => `${ts!.stack.url}${path}`;
  const post = (from: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply> =>
    callFrom(from, url(path), { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const login = (from: string, user_id: string, password: string, headers?: Record<string, string>) => post(from, '/auth/login', { user_id, password }, headers);

  /** `npm run admin -- <args>` as the operator runs it, with the stack's topology and settings. */
  async function admin(...args: string[]): Promise<string> {
    const env: NodeJS.ProcessEnv = { ...process.env, ...SETTINGS, TOPOLOGY: topologyJson(ts!.stack.topology) };
    delete env.TOPOLOGY_FILE;
    const { stdout } = await promisify(execFile)('npm', ['run', '--silent', 'admin', '--', ...args], { cwd: findRepoRoot(), env, timeout: 60_000 });
    return stdout;
  }
  const status = async (ip: string): Promise<LoginStatusLine> => JSON.parse(await admin('login', 'status', '--ip', ip, '--json')) as LoginStatusLine;

  function expectLockedOut(r: Reply, what: string): void {
    expect(r.status, `${what}: ${JSON.stringify(r.body)}`).to.equal(429);
    expect(r.body.error, what).to.equal('rate_limited');
    expect(r.body.retry_after, what).to.be.within(1, 900);
    expect(r.headers.get('retry-after'), what).to.equal(String(r.body.retry_after));
  }

  it('when one address is locked out, then another logs in with the right passwords, the locked one is refused even with them, and unlock lifts it', async () => {
    const alice = uniqueId('alice');
    const bob = uniqueId('bob');
    for (const [user, region] of [[alice, 'EU'], [bob, 'NA']] as const) {
      const r = await post(OTHER, '/auth/register', { user_id: user, name: 'Player', region, password: PASSWORD });
      expect(r.status, JSON.stringify(r.body)).to.equal(201);
    }

    // LOCKED fails for both players and an unknown one, claiming to be OTHER:
    // nginx replaces that X-Forwarded-For, so LOCKED is what is counted.
    const forged = { 'x-forwarded-for': OTHER };
    for (const user of [alice, bob, uniqueId('ghost'), alice]) expect((await login(LOCKED, user, 'wrong password', forged)).status, user).to.equal(401);
    expectLockedOut(await login(LOCKED, bob, 'wrong password', forged), 'the failure after the limit');
    const locked = await status(LOCKED);
    expect(locked).to.deep.include({ kind: 'ip', key: LOCKED, failures: 5, limit: 4, locked: true });
    expect(locked.resets_in_s).to.be.within(1, 900);
    // Neither the other address nor nginx's own (the peer of every gateway) was counted.
    for (const ip of [OTHER, '127.0.0.1']) expect(await status(ip), ip).to.deep.include({ failures: 0, locked: false });

    // The other address: both players' right passwords work.
    for (const user of [alice, bob]) {
      const r = await login(OTHER, user, PASSWORD);
      expect(r.status, `${user} from ${OTHER}: ${JSON.stringify(r.body)}`).to.equal(200);
      expect(r.body.token).to.be.a('string');
    }
    // The locked address: refused, right passwords included.
    for (const user of [alice, bob]) expectLockedOut(await login(LOCKED, user, PASSWORD), `${user} from ${LOCKED}`);

    const lifted = await admin('login', 'unlock', '--ip', LOCKED);
    expect(lifted).to.include(`ip ${LOCKED}`).and.include('counter deleted');
    expect(await status(LOCKED)).to.deep.include({ failures: 0, locked: false });
    for (const user of [alice, bob]) {
      const r = await login(LOCKED, user, PASSWORD);
      expect(r.status, `${user} from ${LOCKED} after unlock: ${JSON.stringify(r.body)}`).to.equal(200);
    }
  });
});
