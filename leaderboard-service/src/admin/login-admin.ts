/**
 * `admin login status|unlock (--ip ADDR | --user ID)...`: the login
 * failure counters of LoginGuard (accounts/login-guard.ts), read and deleted
 * through a LoginGuard of our own on the topology's Redis shards, so the key
 * names and the shard of each counter are the service's own. Needs the
 * services' TOPOLOGY (or TOPOLOGY_FILE), KEY_PREFIX and LOGIN_* settings.
 */
import { isIP } from 'node:net';
import { ShardRouter, type ProjectRef } from '@lb/common/contracts';
import { createLogger, KEY_PREFIX, loadTopology, readKeys, type Env } from '@lb/common/platform';
import { LoginGuard, type LoginCounter, type LoginCounterKind } from '../accounts/login-guard.js';
import { LOGIN_KEYS, loginLimitsOf } from '../config.js';
import { CLI_ACTOR, type AuditRepo } from '../db/audit-repo.js';
import { ShardStores } from '../redis/shard-store.js';

/** A shard that does not answer within this long fails the command. */
const REDIS_TIMEOUT_MS = 5000;

export interface LoginTargets {
  ip?: string[];
  user?: string[];
}

/** One counter as `login status --json` prints it. */
export interface LoginStatusLine {
  kind: LoginCounterKind;
  key: string;
  shard: string;
  /** Failures counted in the window (0 when there is no counter). */
  failures: number;
  /** The limit (LOGIN_IP_MAX_FAILS or LOGIN_USER_MAX_FAILS). */
  limit: number;
  /** The next attempt is refused with 429. */
  locked: boolean;
  /** Seconds until the window ends (0 when there is no counter). */
  resets_in_s: number;
}

/**
 * Runs `login status` or `login unlock`; returns the exit code (2: bad
 * usage). Each lockout lifted (a counter deleted) is recorded in the audit
 * log (`login.unlocked`, key `cli`) right after; a failed insert fails the
 * command.
 */
export async function loginCommand(
  verb: string,
  targets: LoginTargets,
  project: ProjectRef,
  json: boolean,
  env: Env,
  out: (s: string) => void,
  err: (s: string) => void,
  audit: Pick<AuditRepo, 'append'>,
): Promise<number> {
  const wanted: [LoginCounterKind, string][] = [...(targets.ip ?? []).map((k) => ['ip', k.trim()] as [LoginCounterKind, string]), ...(targets.user ?? []).map((k) => ['user', k] as [LoginCounterKind, string])];
  if (wanted.length === 0) {
    err(`login ${verb} needs --ip ADDR or --user ID (repeatable)\n`);
    return 2;
  }
  const badIp = wanted.find(([kind, key]) => kind === 'ip' && isIP(key) === 0);
  if (badIp) {
    err(`--ip ${JSON.stringify(badIp[1])} is not an IP address\n`);
    return 2;
  }
  const settings = readKeys({ keyPrefix: KEY_PREFIX, ...LOGIN_KEYS }, env);
  const limits = loginLimitsOf(settings);
  const router = new ShardRouter(loadTopology(env));
  const log = createLogger('admin', 'error');
  const stores = new ShardStores(router.shards, settings.keyPrefix, REDIS_TIMEOUT_MS, log);
  await stores.connect(log);
  // No in-memory stand-in: a shard that cannot be reached fails the command.
  const guard = new LoginGuard(router, stores, limits, { insurance: false });
  try {
    for (const [kind, key] of wanted) {
      const shard = guard.shardOf(key);
      const what = `${kind} ${key} (shard ${shard})`;
      if (verb === 'unlock') {
        // What the audit entry records as before; a shard that does not answer fails the command, named.
        const before = await guard.status(project, kind, key).catch((e: unknown) => {
          throw new Error(`${what}: ${(e as Error).message}`, { cause: e });
        });
        const had = await guard.unlock(project, kind, key);
        if (had) {
          await audit.append({
            tenant: project.tenant,
            project: project.project,
            key: CLI_ACTOR,
            action: 'login.unlocked',
            target: `login ${kind} ${key}`.slice(0, 300),
            change: { before: before && { failures: before.failures, locked: before.remaining === 0 } },
          });
        }
        out(had ? `${what}: counter deleted; logins are admitted again` : `${what}: no failures counted, nothing to lift`);
        continue;
      }
      const line = statusLine(kind, key, shard, kind === 'ip' ? limits.ipMaxFails : limits.userMaxFails, await guard.status(project, kind, key));
      if (json) out(JSON.stringify(line));
      else if (line.failures === 0 && line.resets_in_s === 0) out(`${what}: no failures counted`);
      else out(`${what}: ${line.failures} failures counted (limit ${line.limit})${line.locked ? ', LOCKED OUT' : ''}; the window ends in ${line.resets_in_s} s`);
    }
    return 0;
  } finally {
    await stores.close();
  }
}

function statusLine(kind: LoginCounterKind, key: string, shard: string, limit: number, c: LoginCounter | undefined): LoginStatusLine {
  return {
    kind,
    key,
    shard,
    failures: c?.failures ?? 0,
    limit,
    locked: c !== undefined && c.remaining === 0,
    resets_in_s: c ? Math.ceil(c.msLeft / 1000) : 0,
  };
}
