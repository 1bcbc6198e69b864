/**
 * The admin command (`npm run admin -- ...`; in an image
 * `node leaderboard-service/dist/admin/cli.js ...`): API keys of the control
 * plane, in the first shard's database of the topology (TOPOLOGY,
 * TOPOLOGY_FILE or the local default; `.env` is read first).
 *
 *   key create --name NAME   prints the new key once; only its hash is kept
 *   key list [--json]        id, name, created, revoked
 *   key revoke ID
 *   webhook list [--json]    period.closed deliveries: id, status, attempts, last error
 *   webhook replay ID        a failed delivery goes out again (the worker picks it up)
 *   login status (--ip ADDR | --user ID)... [--json]
 *                            a login failure counter: failures, limit, locked, time left
 *   login unlock (--ip ADDR | --user ID)...
 *                            lifts a login lockout (deletes the counter on its Redis shard)
 */
import 'dotenv/config';
import { parseArgs } from 'node:util';
import { DEFAULT_PROJECT } from '@lb/common/contracts';
import { createLogger, loadTopology, PG_SERVICE_PASSWORD, PgPools, type Env } from '@lb/common/platform';
import { ApiKeysRepo } from '../db/api-keys-repo.js';
import { loginCommand } from './login-admin.js';

export const USAGE = `usage: admin key create --name NAME | key list [--json] | key revoke ID | webhook list [--json] | webhook replay ID | login status (--ip ADDR | --user ID)... [--json] | login unlock (--ip ADDR | --user ID)...`;

/** Runs the command; returns the exit code (2: bad usage). Settings (topology, key prefix...) come from `env`. */
export async function runAdmin(
  argv: string[],
  out: (s: string) => void = (s) => process.stdout.write(`${s}\n`),
  err: (s: string) => void = (s) => process.stderr.write(s),
  env: Env = process.env,
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        name: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean' },
        ip: { type: 'string', multiple: true },
        user: { type: 'string', multiple: true },
      },
    });
  } catch (e) {
    err(`${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const [what, verb, arg] = parsed.positionals;
  if (parsed.values.help) {
    out(USAGE);
    return 0;
  }
  const known =
    (what === 'key' && ['create', 'list', 'revoke'].includes(verb ?? '')) ||
    (what === 'webhook' && ['list', 'replay'].includes(verb ?? '')) ||
    (what === 'login' && ['status', 'unlock'].includes(verb ?? ''));
  if (!known) {
    err(`${USAGE}\n`);
    return 2;
  }
  if (what === 'login') return loginCommand(verb!, parsed.values, Boolean(parsed.values.json), env, out, err);
  const topology = loadTopology(env);
  const pools = new PgPools(topology.shards.slice(0, 1), { size: 1, servicePassword: PG_SERVICE_PASSWORD.read(env), applicationName: 'lb-admin' }, createLogger('admin', 'error'));
  const repo = new ApiKeysRepo(pools, topology.shards[0]!.id);
  try {
    if (what === 'webhook') return await webhooks(pools, topology.shards[0]!.id, verb!, arg, Boolean(parsed.values.json), out, err);
    if (verb === 'create') {
      const name = parsed.values.name?.trim();
      if (!name || name.length > 100) {
        err(`key create needs --name (1-100 characters)\n${USAGE}\n`);
        return 2;
      }
      const k = await repo.create(name);
      out(k.key);
      err(`created key ${k.id} (${k.name}); it is shown only now, keep it safe\n`);
      return 0;
    }
    if (verb === 'list') {
      const keys = await repo.list();
      if (parsed.values.json) out(JSON.stringify(keys));
      else for (const k of keys) out(`${k.id}  ${k.name}  created ${k.created_at}${k.revoked_at ? `  REVOKED ${k.revoked_at}` : ''}`);
      return 0;
    }
    if (!arg) {
      err(`key revoke needs the key id\n${USAGE}\n`);
      return 2;
    }
    if (!(await repo.revoke(arg))) {
      err(`no live key ${arg}\n`);
      return 1;
    }
    out(`revoked ${arg}`);
    return 0;
  } finally {
    await pools.close();
  }
}

/** The default project's webhook deliveries of closed periods (in the control plane), in its row scope. */
async function webhooks(pools: PgPools, control: string, verb: string, id: string | undefined, json: boolean, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const q = <R extends Record<string, unknown>>(text: string, values: unknown[] = []) => pools.inScope(control, DEFAULT_PROJECT, (c) => c.query<R>(text, values), 'admin');
  if (verb === 'list') {
    const r = await q<{ id: string; status: string; attempts: number; last_error: string | null; url: string }>(
      'SELECT id, status, attempts, last_error, url FROM webhook_deliveries ORDER BY created_at DESC LIMIT 200',
    );
    if (json) out(JSON.stringify(r.rows));
    else for (const d of r.rows) out(`${d.id}  ${d.status}  ${d.attempts} attempts  ${d.url}${d.last_error ? `  (${d.last_error})` : ''}`);
    return 0;
  }
  if (!id) {
    err(`webhook replay needs the delivery id\n${USAGE}\n`);
    return 2;
  }
  const r = await q(`UPDATE webhook_deliveries SET status = 'pending', attempts = 0, last_error = NULL WHERE id = $1 AND status = 'failed'`, [id]);
  if (r.rowCount !== 1) {
    err(`no failed delivery ${id}\n`);
    return 1;
  }
  out(`delivery ${id} will be sent again (within PERIOD_SYNC_MS)`);
  return 0;
}

// Run as a program (not when imported by tests or scripts/admin.ts's caller).
if (process.argv[1] && import.meta.url === new URL(process.argv[1], 'file://').href) {
  runAdmin(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e: unknown) => {
      process.stderr.write(`admin: ${(e as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
