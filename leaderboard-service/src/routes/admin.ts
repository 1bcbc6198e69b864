/**
 * /admin: the control plane, for holders of a platform or admin key
 * (X-Api-Key; see http/credentials.ts). Input checks and mapping only; the
 * rules live in boards/ and db/.
 *
 *   /admin/tenants[/:tenant]     platform keys: tenants and their plans
 *   /admin/projects[/:project]   a tenant's projects (an admin key's own tenant, a platform key's ?tenant=)
 *   /admin/keys[/:id]            that tenant's API keys
 *   /admin/boards[/:id]          the boards of the key's project
 *   /admin/stats                 platform keys: the installation's backlog and write rates
 *   /admin/audit                 the audit log: an admin key's own tenant, a platform key's ?tenant= or every tenant
 *
 * Every change made here is recorded in the audit log (db/audit-repo.ts)
 * once it succeeded, before the answer: a failed insert fails the request
 * (the change stays made, and the caller sees an error, not a success).
 *
 * A name of another tenant (a tenant, a project, a key id) answers the 404
 * of a name that does not exist.
 */
import { AppError, boardJson, DEFAULT_TENANT, invalidField, TENANCY_ID, validate, type KeyKind } from '@lb/common/contracts';
import { Router, type Request, type RequestHandler, type Response } from 'express';
import type { BoardAdmin } from '../boards/admin.js';
import { adminStats } from '../admin/stats.js';
import type { ApiKeysRepo, NewKey } from '../db/api-keys-repo.js';
import { isAuditAction, keyCreatedFact, tenantChangeFacts, type AuditFact, type AuditRepo } from '../db/audit-repo.js';
import type { ProjectsRepo, TenantsRepo } from '../db/tenants-repo.js';
import { callerOf, projectOf, requireKind, type Credentials } from '../http/credentials.js';
import type { ShardStores } from '../redis/shard-store.js';

/** Every /admin route needs a platform or admin key: none (or an invalid one) is 401 `invalid_api_key`, another kind 403 `forbidden`. */
export const requireAdminKey: RequestHandler = (req, _res, next) => {
  requireKind(callerOf(req), ['platform', 'admin']);
  next();
};

export interface AdminRouteDeps {
  admin: BoardAdmin;
  stores: ShardStores;
  instanceId: string;
  tenants: TenantsRepo;
  projects: ProjectsRepo;
  keys: ApiKeysRepo;
  audit: AuditRepo;
  /** Told when this replica changes a tenant's projects. */
  credentials: Pick<Credentials, 'forgetProjects' | 'cacheLifeMs'>;
}

const NAME_MAX = 200;
const KEY_NAME_MAX = 100;
/** GET /admin/audit's page: 50 entries unless `limit` says otherwise, at most 200. */
const AUDIT_LIMIT = 50;
const AUDIT_LIMIT_MAX = 200;

function nameField(v: unknown, max: number): string {
  if (typeof v !== 'string' || v.trim() === '' || v.length > max) throw invalidField('name', `must be 1-${max} characters`);
  return v.trim();
}

export function adminRoutes(deps: AdminRouteDeps): Router {
  /**
   * Removes deleted projects' Redis data from every shard, once no replica can still admit one of
   * their requests (their key and project caches have expired); their Postgres rows stay, marked deleted.
   */
  const purgeRedis = async (tenant: string, projects: readonly string[]): Promise<void> => {
    if (projects.length === 0) return;
    await new Promise((r) => setTimeout(r, deps.credentials.cacheLifeMs + 100));
    await Promise.all(deps.stores.all().flatMap((s) => projects.map((project) => s.purgeProject({ tenant, project }))));
  };
  /** Records an action of this request: its key (id and name) and request id. */
  const record = async (req: Request, res: Response, ...facts: AuditFact[]): Promise<void> => {
    const key = callerOf(req).key;
    for (const e of facts) await deps.audit.append({ ...e, key: key ? { id: key.id, name: key.name } : null, requestId: (res.locals.requestId as string | undefined) ?? null });
  };
  const r = Router();
  const platformOnly = (req: Parameters<RequestHandler>[0]) => requireKind(callerOf(req), ['platform']);

  // Per-shard backlog, relay lag and this replica's write rate (the live page's operator panel).
  r.get('/admin/stats', async (req, res) => {
    platformOnly(req);
    res.json(await adminStats(deps.stores, deps.instanceId));
  });

  // ------------------------------------------------------------ tenants (platform)
  r.post('/admin/tenants', async (req, res) => {
    platformOnly(req);
    const b = validate.bodyObject(req.body);
    validate.onlyFields(b, ['id', 'name', 'plan', 'monthly_ops', 'webhook_url']);
    const { webhook_secret, ...t } = await deps.tenants.create({
      id: validate.tenancyId(b.id, 'id'),
      name: nameField(b.name, NAME_MAX),
      plan: b.plan === undefined ? 'free' : validate.tenancyId(b.plan, 'plan'),
      monthlyOps: monthlyOpsField(b.monthly_ops),
      webhookUrl: b.webhook_url === undefined ? undefined : validate.webhookUrl(b.webhook_url, 'webhook_url'),
    });
    await record(req, res, { tenant: t.id, action: 'tenant.created', target: `tenant ${t.id}`, change: { after: t } });
    // The webhook's signing secret is shown this once.
    res.status(201).json({ ...t, ...(webhook_secret !== undefined && { webhook_secret }) });
  });
  // The plans and the limits each gives every project of a tenant on it (sql/010_plans.sql).
  r.get('/admin/plans', async (_req, res) => {
    res.json({ plans: await deps.tenants.plans() });
  });
  r.get('/admin/tenants', async (req, res) => {
    platformOnly(req);
    res.json({ tenants: await deps.tenants.list() });
  });
  r.get('/admin/tenants/:tenant', async (req, res) => {
    platformOnly(req);
    res.json(await deps.tenants.get(tenantParam(req.params.tenant)));
  });
  r.patch('/admin/tenants/:tenant', async (req, res) => {
    platformOnly(req);
    const b = validate.bodyObject(req.body);
    validate.onlyFields(b, ['name', 'plan', 'monthly_ops', 'webhook_url']);
    const id = tenantParam(req.params.tenant);
    const change = {
      name: b.name === undefined ? undefined : nameField(b.name, NAME_MAX),
      plan: b.plan === undefined ? undefined : validate.tenancyId(b.plan, 'plan'),
      monthlyOps: monthlyOpsField(b.monthly_ops),
      webhookUrl: b.webhook_url === undefined ? undefined : validate.webhookUrl(b.webhook_url, 'webhook_url'),
    };
    const before = await deps.tenants.get(id);
    const { webhook_secret, ...after } = await deps.tenants.update(id, change);
    deps.credentials.forgetProjects(id);
    await record(req, res, ...tenantChangeFacts(before, after));
    res.json({ ...after, ...(webhook_secret !== undefined && { webhook_secret }) });
  });
  r.delete('/admin/tenants/:tenant', async (req, res) => {
    platformOnly(req);
    const tenant = tenantParam(req.params.tenant);
    const projects = (await deps.projects.liveIds(tenant)) ?? [];
    const before = await deps.tenants.get(tenant);
    await deps.tenants.delete(tenant);
    deps.credentials.forgetProjects(tenant);
    await record(req, res, { tenant, action: 'tenant.deleted', target: `tenant ${tenant}`, change: { before } });
    await purgeRedis(tenant, projects);
    res.status(204).end();
  });

  // ------------------------------------------------------------ the caller's own tenant (admin keys too)
  r.get('/admin/tenant', async (req, res) => {
    res.json(await deps.tenants.get(callerOf(req).tenant));
  });
  // A tenant's administrators set where its own events (quota.warning, quota.exceeded) go.
  r.patch('/admin/tenant', async (req, res) => {
    const b = validate.bodyObject(req.body);
    validate.onlyFields(b, ['webhook_url']);
    if (b.webhook_url === undefined) throw invalidField('webhook_url', 'is required (an http(s) URL, or null to remove it)');
    const id = callerOf(req).tenant;
    const before = await deps.tenants.get(id);
    const { webhook_secret, ...after } = await deps.tenants.update(id, { webhookUrl: validate.webhookUrl(b.webhook_url, 'webhook_url') });
    await record(req, res, ...tenantChangeFacts(before, after));
    res.json({ ...after, ...(webhook_secret !== undefined && { webhook_secret }) });
  });

  // ------------------------------------------------------------ projects (the caller's tenant)
  r.post('/admin/projects', async (req, res) => {
    const b = validate.bodyObject(req.body);
    validate.onlyFields(b, ['id', 'name']);
    const tenant = callerOf(req).tenant;
    const made = await deps.projects.create(tenant, { id: validate.tenancyId(b.id, 'id'), name: nameField(b.name, NAME_MAX) });
    deps.credentials.forgetProjects(tenant);
    await record(req, res, { tenant, project: made.id, action: 'project.created', target: `project ${made.id}`, change: { after: made } });
    res.status(201).json({ tenant, ...made });
  });
  r.get('/admin/projects', async (req, res) => {
    const tenant = callerOf(req).tenant;
    res.json({ tenant, projects: await deps.projects.list(tenant) });
  });
  r.delete('/admin/projects/:project', async (req, res) => {
    const id = String(req.params.project);
    if (!TENANCY_ID.test(id)) throw new AppError('project_not_found', `no project ${id}`, { project: id });
    const tenant = callerOf(req).tenant;
    const before = (await deps.projects.list(tenant)).find((p) => p.id === id) ?? null;
    await deps.projects.delete(tenant, id);
    deps.credentials.forgetProjects(tenant);
    await record(req, res, { tenant, project: id, action: 'project.deleted', target: `project ${id}`, change: { before } });
    await purgeRedis(tenant, [id]);
    res.status(204).end();
  });

  // ------------------------------------------------------------ keys (the caller's tenant)
  r.post('/admin/keys', async (req, res) => {
    const caller = callerOf(req);
    const b = validate.bodyObject(req.body);
    validate.onlyFields(b, ['kind', 'name', 'project']);
    const kind = b.kind as KeyKind;
    if (kind !== 'platform' && kind !== 'admin' && kind !== 'server' && kind !== 'client') throw invalidField('kind', 'must be platform, admin, server or client');
    const name = nameField(b.name, KEY_NAME_MAX);
    let what: NewKey;
    if (kind === 'platform') {
      // Only the operator makes operators.
      requireKind(caller, ['platform']);
      if (b.project !== undefined) throw invalidField('project', 'a platform key has no project');
      what = { kind };
    } else if (kind === 'admin') {
      if (b.project !== undefined) throw invalidField('project', 'an admin key has no project');
      what = { kind, tenant: caller.tenant };
    } else {
      if (b.project === undefined) throw invalidField('project', `is required for a ${kind} key`);
      const project = validate.tenancyId(b.project, 'project');
      // The project must be a live one of the caller's tenant (another tenant's answers like a missing one).
      if (!(await deps.projects.list(caller.tenant)).some((p) => p.id === project)) throw new AppError('project_not_found', `no project ${project}`, { project });
      what = { kind, project: { tenant: caller.tenant, project } };
    }
    const made = await deps.keys.create(name, what);
    await record(req, res, keyCreatedFact(kind === 'platform' ? DEFAULT_TENANT : caller.tenant, made));
    res.status(201).json(made);
  });
  r.get('/admin/keys', async (req, res) => {
    const caller = callerOf(req);
    res.json({ tenant: caller.tenant, keys: await deps.keys.list(caller.tenant, caller.key!.kind === 'platform') });
  });
  r.delete('/admin/keys/:id', async (req, res) => {
    const caller = callerOf(req);
    const id = String(req.params.id);
    const withPlatform = caller.key!.kind === 'platform';
    const before = (await deps.keys.list(caller.tenant, withPlatform)).find((k) => k.id === id) ?? null;
    if (!(await deps.keys.revoke(id, caller.tenant, withPlatform))) throw new AppError('key_not_found', `no live key ${id}`, { id });
    await record(req, res, { tenant: caller.tenant, project: before?.project ?? null, action: 'key.revoked', target: `key ${id}`, change: { before } });
    res.status(204).end();
  });

  // ------------------------------------------------------------ boards (the key's project)
  r.post('/admin/boards', async (req, res) => {
    const project = projectOf(req);
    const { board, webhookSecret } = await deps.admin.create(project, validate.bodyObject(req.body));
    // Recorded without the webhook secret (boardJson has none).
    await record(req, res, { tenant: project.tenant, project: project.project, action: 'board.created', target: `board ${board.id}`, change: { after: boardJson(board) } });
    // The signing secret of the board's webhooks is shown this once.
    res.status(201).json({ ...boardJson(board), webhook_secret: webhookSecret });
  });
  r.patch('/admin/boards/:id', async (req, res) => {
    const project = projectOf(req);
    const id = String(req.params.id);
    const before = boardJson(await deps.admin.live(project, id));
    const after = boardJson(await deps.admin.update(project, id, validate.bodyObject(req.body)));
    await record(req, res, { tenant: project.tenant, project: project.project, action: 'board.updated', target: `board ${id}`, change: { before, after } });
    res.json(after);
  });
  r.delete('/admin/boards/:id', async (req, res) => {
    const project = projectOf(req);
    const id = String(req.params.id);
    const before = boardJson(await deps.admin.live(project, id));
    await deps.admin.delete(project, id);
    await record(req, res, { tenant: project.tenant, project: project.project, action: 'board.deleted', target: `board ${id}`, change: { before } });
    res.status(204).end();
  });

  // ------------------------------------------------------------ the audit log
  // An admin key: its own tenant's entries. A platform key: ?tenant='s, or with none every tenant's (`tenant` null).
  r.get('/admin/audit', async (req, res) => {
    const caller = callerOf(req);
    const limit = validate.queryInt(req.query.limit, 'limit', AUDIT_LIMIT, 1, AUDIT_LIMIT_MAX);
    const before = req.query.before === undefined ? undefined : validate.queryInt(req.query.before, 'before', 0, 1, Number.MAX_SAFE_INTEGER);
    const action = req.query.action;
    if (action !== undefined && !isAuditAction(action)) throw new AppError('invalid_query', 'action: must be one of the audit actions (docs/API.md)', { field: 'action' });
    const tenant = caller.key!.kind === 'platform' && req.query.tenant === undefined ? undefined : caller.tenant;
    // One more than asked says whether there is a next page.
    const rows = await deps.audit.list(tenant, { limit: limit + 1, before, action });
    const entries = rows.slice(0, limit);
    res.json({ tenant: tenant ?? null, entries, next_before: rows.length > limit ? entries[entries.length - 1]!.id : null });
  });
  return r;
}

/** `monthly_ops`: a positive integer, or null (none of its own); undefined when not given. */
function monthlyOpsField(v: unknown): number | null | undefined {
  if (v === undefined || v === null) return v;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw invalidField('monthly_ops', 'must be a positive integer or null');
  return v;
}

/** A tenant id in a path: anything that is none is a tenant that does not exist. */
function tenantParam(v: unknown): string {
  const id = String(v);
  if (!TENANCY_ID.test(id)) throw new AppError('tenant_not_found', `no tenant ${id}`, { tenant: id });
  return id;
}
