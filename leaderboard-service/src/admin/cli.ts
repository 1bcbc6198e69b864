/**
 * The admin command (`npm run admin -- ...`; in an image
 * `node leaderboard-service/dist/admin/cli.js ...`): tenants, projects and
 * API keys of the control plane, in the first shard's database of the
 * topology (TOPOLOGY, TOPOLOGY_FILE or the local default; `.env` is read
 * first). It acts as the operator (a platform key would).
 *
 *   tenant create ID --name NAME [--plan PLAN]   a tenant (plan default: free)
 *   tenant list [--json]
 *   tenant update ID [--name NAME] [--plan PLAN] every replica sees a new plan within a second
 *   tenant delete ID                             marks it and its projects deleted, revokes its keys
 *   project create ID --tenant T --name NAME
 *   project list --tenant T [--json]
 *   project delete ID --tenant T                 marks it deleted, revokes its keys
 *   key create --name NAME [--kind K] [--tenant T] [--project P]
 *                            prints the new key once; only its hash is kept. K: platform
 *                            (the default), admin (of --tenant), server or client (of
 *                            --tenant's --project)
 *   key list [--tenant T] [--json]   id, kind, name, project, created, revoked (tenant default: platform keys too)
 *   key revoke ID [--tenant T]
 *   webhook list [--tenant T --project P] [--json]
 *                            period.closed deliveries: id, status, attempts, last error
 *   webhook replay ID [--tenant T --project P]
 *                            a failed delivery goes out again (the worker picks it up)
 *   login status (--ip ADDR | --user ID)... [--tenant T --project P] [--json]
 *                            a login failure counter: failures, limit, locked, time left
 *   login unlock (--ip ADDR | --user ID)... [--tenant T --project P]
 *                            lifts a login lockout (deletes the counter on its Redis shard)
 *   (webhook and login act on project default/default unless --project names one)
 */
import 'dotenv/config';
import { parseArgs } from 'node:util';
import { AppError, DEFAULT_PROJECT, DEFAULT_TENANT, TENANCY_ID, type KeyKind, type ProjectRef } from '@lb/common/contracts';
import { createLogger, loadTopology, PG_SERVICE_PASSWORD, PgPools, type Env } from '@lb/common/platform';
import { ApiKeysRepo, type NewKey } from '../db/api-keys-repo.js';
import { AuditRepo, CLI_ACTOR, appendIn, keyCreatedFact, tenantChangeFacts, type AuditFact } from '../db/audit-repo.js';
import { ProjectsRepo, TenantsRepo } from '../db/tenants-repo.js';
import { loginCommand } from './login-admin.js';

export const USAGE = `usage: admin tenant create ID --name NAME [--plan PLAN] | tenant list [--json] | tenant update ID [--name NAME] [--plan PLAN] | tenant delete ID | project create ID --tenant T --name NAME | project list --tenant T [--json] | project delete ID --tenant T | key create --name NAME [--kind platform|admin|server|client] [--tenant T] [--project P] | key list [--tenant T] [--json] | key revoke ID [--tenant T] | webhook list [--tenant T --project P] [--json] | webhook replay ID [--tenant T --project P] | login status (--ip ADDR | --user ID)... [--tenant T --project P] [--json] | login unlock (--ip ADDR | --user ID)... [--tenant T --project P]`;

const VERBS: Record<string, readonly string[]> = {
  tenant: ['create', 'list', 'update', 'delete'],
  project: ['create', 'list', 'delete'],
  key: ['create', 'list', 'revoke'],
  webhook: ['list', 'replay'],
  login: ['status', 'unlock'],
};

type Values = { name?: string | undefined; plan?: string | undefined; kind?: string | undefined; tenant?: string | undefined; project?: string | undefined; json?: boolean | undefined };

/** Bad usage: the message, then the usage, exit code 2. */
class Usage extends Error {}

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
        plan: { type: 'string' },
        kind: { type: 'string' },
        tenant: { type: 'string' },
        project: { type: 'string' },
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
  if (!what || !VERBS[what]?.includes(verb ?? '')) {
    err(`${USAGE}\n`);
    return 2;
  }
  // webhook and login act on one project (default/default unless named).
  let scope: ProjectRef = DEFAULT_PROJECT;
  try {
    if (what === 'webhook' || what === 'login') scope = projectScopeOf(parsed.values);
  } catch (e) {
    if (!(e instanceof Usage)) throw e;
    err(`${e.message}\n${USAGE}\n`);
    return 2;
  }
  const topology = loadTopology(env);
  const control = topology.shards[0]!.id;
  // Connects on first use only: `login status` never does.
  const pools = new PgPools(topology.shards.slice(0, 1), { size: 1, servicePassword: PG_SERVICE_PASSWORD.read(env), applicationName: 'lb-admin' }, createLogger('admin', 'error'));
  const audit = new AuditRepo(pools, control);
  try {
    if (what === 'login') return await loginCommand(verb!, parsed.values, scope, Boolean(parsed.values.json), env, out, err, audit);
    if (what === 'webhook') return await webhooks(pools, control, scope, verb!, arg, Boolean(parsed.values.json), out, err);
    const repos = { keys: new ApiKeysRepo(pools, control), tenants: new TenantsRepo(pools, control), projects: new ProjectsRepo(pools, control), audit };
    const run = what === 'key' ? keys : what === 'tenant' ? tenants : projects;
    return await run(repos, verb!, arg, parsed.values, out, err);
  } catch (e) {
    if (e instanceof Usage) {
      err(`${e.message}\n${USAGE}\n`);
      return 2;
    }
    // A refusal the API would answer 4xx (no such tenant, an id taken...) is the command's error, not a crash.
    if (e instanceof AppError && e.status < 500) {
      err(`${e.message}\n`);
      return 1;
    }
    throw e;
  } finally {
    await pools.close();
  }
}

interface Repos {
  keys: ApiKeysRepo;
  tenants: TenantsRepo;
  projects: ProjectsRepo;
  audit: AuditRepo;
}

/** Records an action of the command (key `cli`, no request id), after it succeeded: a failure fails the command. */
async function record(audit: AuditRepo, e: AuditFact): Promise<void> {
  await audit.append({ ...e, key: CLI_ACTOR, requestId: null });
}

function need(v: string | undefined, what: string, max = 200): string {
  const t = v?.trim();
  if (!t || t.length > max) throw new Usage(`${what} (1-${max} characters) is required`);
  return t;
}

/** The project `webhook` and `login` act on: `--tenant T --project P`, default default/default (a tenant's only project needs naming too). */
function projectScopeOf(v: Values): ProjectRef {
  if (v.tenant === undefined && v.project === undefined) return DEFAULT_PROJECT;
  return { tenant: v.tenant === undefined ? DEFAULT_TENANT : id(v.tenant, '--tenant'), project: id(v.project, '--project') };
}

function id(v: string | undefined, what: string): string {
  if (v === undefined || !TENANCY_ID.test(v)) throw new Usage(`${what} must match [a-z0-9][a-z0-9_-]{0,63}`);
  return v;
}

async function keys(r: Repos, verb: string, arg: string | undefined, v: Values, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const tenant = v.tenant === undefined ? DEFAULT_TENANT : id(v.tenant, '--tenant');
  if (verb === 'create') {
    const name = need(v.name, 'key create --name', 100);
    const kind = (v.kind ?? 'platform') as KeyKind;
    let what: NewKey;
    if (kind === 'platform') what = { kind };
    else if (kind === 'admin') what = { kind, tenant };
    else if (kind === 'server' || kind === 'client') {
      const project = id(v.project, 'key create --kind server|client --project');
      if (!(await r.projects.list(tenant)).some((p) => p.id === project)) {
        err(`tenant ${tenant} has no project ${project}\n`);
        return 1;
      }
      what = { kind, project: { tenant, project } };
    } else throw new Usage('--kind must be platform, admin, server or client');
    const k = await r.keys.create(name, what);
    await record(r.audit, keyCreatedFact(kind === 'platform' ? DEFAULT_TENANT : tenant, k));
    out(k.key);
    err(`created ${k.kind} key ${k.id} (${k.name}${k.project ? `, project ${tenant}/${k.project}` : ''}); it is shown only now, keep it safe\n`);
    return 0;
  }
  if (verb === 'list') {
    const list = await r.keys.list(tenant);
    if (v.json) out(JSON.stringify(list));
    else for (const k of list) out(`${k.id}  ${k.kind}  ${k.name}${k.project ? `  project ${k.project}` : ''}  created ${k.created_at}${k.revoked_at ? `  REVOKED ${k.revoked_at}` : ''}`);
    return 0;
  }
  if (!arg) throw new Usage('key revoke needs the key id');
  const before = (await r.keys.list(tenant)).find((k) => k.id === arg) ?? null;
  if (!(await r.keys.revoke(arg, tenant))) {
    err(`no live key ${arg}\n`);
    return 1;
  }
  await record(r.audit, { tenant, project: before?.project ?? null, action: 'key.revoked', target: `key ${arg}`, change: { before } });
  out(`revoked ${arg}`);
  return 0;
}

async function tenants(r: Repos, verb: string, arg: string | undefined, v: Values, out: (s: string) => void, _err: (s: string) => void): Promise<number> {
  if (verb === 'list') {
    const list = await r.tenants.list();
    if (v.json) out(JSON.stringify(list));
    else for (const t of list) out(`${t.id}  ${t.plan}  ${t.name}`);
    return 0;
  }
  const tenant = id(arg, `tenant ${verb} ID`);
  if (verb === 'create') {
    const t = await r.tenants.create({ id: tenant, name: need(v.name, 'tenant create --name'), plan: v.plan === undefined ? 'free' : id(v.plan, '--plan') });
    await record(r.audit, { tenant, action: 'tenant.created', target: `tenant ${tenant}`, change: { after: t } });
    out(`created tenant ${t.id} (plan ${t.plan})`);
  } else if (verb === 'update') {
    if (v.name === undefined && v.plan === undefined) throw new Usage('tenant update needs --name or --plan');
    const before = await r.tenants.get(tenant);
    const t = await r.tenants.update(tenant, { name: v.name === undefined ? undefined : need(v.name, '--name'), plan: v.plan === undefined ? undefined : id(v.plan, '--plan') });
    for (const fact of tenantChangeFacts(before, t)) await record(r.audit, fact);
    out(`tenant ${t.id}: ${t.name}, plan ${t.plan}`);
  } else {
    const before = await r.tenants.get(tenant);
    await r.tenants.delete(tenant);
    await record(r.audit, { tenant, action: 'tenant.deleted', target: `tenant ${tenant}`, change: { before } });
    out(`deleted tenant ${tenant}; its keys are revoked`);
  }
  return 0;
}

async function projects(r: Repos, verb: string, arg: string | undefined, v: Values, out: (s: string) => void, _err: (s: string) => void): Promise<number> {
  const tenant = id(v.tenant, `project ${verb} --tenant`);
  if (verb === 'list') {
    const list = await r.projects.list(tenant);
    if (v.json) out(JSON.stringify(list));
    else for (const p of list) out(`${p.id}  ${p.name}`);
    return 0;
  }
  const project = id(arg, `project ${verb} ID`);
  if (verb === 'create') {
    const made = await r.projects.create(tenant, { id: project, name: need(v.name, 'project create --name') });
    await record(r.audit, { tenant, project, action: 'project.created', target: `project ${project}`, change: { after: made } });
    out(`created project ${tenant}/${project}`);
  } else {
    const before = (await r.projects.list(tenant)).find((p) => p.id === project) ?? null;
    await r.projects.delete(tenant, project);
    await record(r.audit, { tenant, project, action: 'project.deleted', target: `project ${project}`, change: { before } });
    out(`deleted project ${tenant}/${project}; its keys are revoked`);
  }
  return 0;
}

/** A project's webhook deliveries of closed periods (in the control plane), in its row scope; a replay is recorded in its own transaction. */
async function webhooks(pools: PgPools, control: string, project: ProjectRef, verb: string, id: string | undefined, json: boolean, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const q = <R extends Record<string, unknown>>(text: string, values: unknown[] = []) => pools.inScope(control, project, (c) => c.query<R>(text, values), 'admin');
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
  const replayed = await pools.inScope(
    control,
    project,
    async (c) => {
      const was = await c.query<{ attempts: number; last_error: string | null }>(`SELECT attempts, last_error FROM webhook_deliveries WHERE id = $1 AND status = 'failed' FOR UPDATE`, [id]);
      const before = was.rows[0];
      if (!before) return false;
      await c.query(`UPDATE webhook_deliveries SET status = 'pending', attempts = 0, last_error = NULL WHERE id = $1`, [id]);
      await appendIn(c, {
        tenant: project.tenant,
        project: project.project,
        key: CLI_ACTOR,
        action: 'webhook.replayed',
        target: `webhook delivery ${id}`,
        change: { before: { status: 'failed', ...before }, after: { status: 'pending', attempts: 0, last_error: null } },
      });
      return true;
    },
    'admin',
  );
  if (!replayed) {
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
