/**
 * The admin command (`npm run admin -- ...`; in an image
 * `node leaderboard-service/dist/admin/cli.js ...`): API keys of the control
 * plane, in the first shard's database of the topology (TOPOLOGY,
 * TOPOLOGY_FILE or the local default; `.env` is read first).
 *
 *   key create --name NAME   prints the new key once; only its hash is kept
 *   key list [--json]        id, name, created, revoked
 *   key revoke ID
 */
import 'dotenv/config';
import { parseArgs } from 'node:util';
import { createLogger, loadTopology, PgPools } from '@lb/common';
import { ApiKeysRepo } from '../db/api-keys-repo.js';

export const USAGE = `usage: admin key create --name NAME | key list [--json] | key revoke ID`;

/** Runs the command; returns the exit code (2: bad usage). */
export async function runAdmin(argv: string[], out: (s: string) => void = (s) => process.stdout.write(`${s}\n`)): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { name: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' } } });
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const [what, verb, arg] = parsed.positionals;
  if (parsed.values.help) {
    out(USAGE);
    return 0;
  }
  if (what !== 'key' || !['create', 'list', 'revoke'].includes(verb ?? '')) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const topology = loadTopology();
  const pools = new PgPools(topology.shards.slice(0, 1), { size: 1, applicationName: 'lb-admin' }, createLogger('admin', 'error'));
  const repo = new ApiKeysRepo(pools, topology.shards[0]!.id);
  try {
    if (verb === 'create') {
      const name = parsed.values.name?.trim();
      if (!name || name.length > 100) {
        process.stderr.write(`key create needs --name (1-100 characters)\n${USAGE}\n`);
        return 2;
      }
      const k = await repo.create(name);
      out(k.key);
      process.stderr.write(`created key ${k.id} (${k.name}); it is shown only now, keep it safe\n`);
      return 0;
    }
    if (verb === 'list') {
      const keys = await repo.list();
      if (parsed.values.json) out(JSON.stringify(keys));
      else for (const k of keys) out(`${k.id}  ${k.name}  created ${k.created_at}${k.revoked_at ? `  REVOKED ${k.revoked_at}` : ''}`);
      return 0;
    }
    if (!arg) {
      process.stderr.write(`key revoke needs the key id\n${USAGE}\n`);
      return 2;
    }
    if (!(await repo.revoke(arg))) {
      process.stderr.write(`no live key ${arg}\n`);
      return 1;
    }
    out(`revoked ${arg}`);
    return 0;
  } finally {
    await pools.close();
  }
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
