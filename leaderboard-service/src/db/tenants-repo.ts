/**
 * Tenants and their projects in the control-plane database (sql/009).
 * Tenants are the installation's own list (platform keys only, no
 * row-level security); projects are rows of a tenant, read and written in
 * the tenant's scope ({@link PgPools.inScope}), every statement also naming
 * the tenant itself (a role that bypasses row-level security, a superuser
 * or the owner, still touches only that tenant's rows). Deleting keeps the row,
 * marked, its id never reused, and revokes the keys it had.
 */
import { AppError, DEFAULT_PROJECT_ID, DEFAULT_TENANT, invalidField, type ProjectLimits } from '@lb/common/contracts';
import { randomBytes } from 'node:crypto';
import type { PgPools } from '@lb/common/platform';

export interface TenantInfo {
  id: string;
  name: string;
  plan: string;
  /** The tenant's own monthly quota (enterprise), or null: its plan's applies. */
  monthly_ops: number | null;
  /** Where its quota events are POSTed, or null. */
  webhook_url: string | null;
  created_at: string;
  updated_at: string;
}

export interface ProjectInfo {
  id: string;
  name: string;
  created_at: string;
}

/** Postgres' unique_violation. */
const UNIQUE_VIOLATION = '23505';
/** tenants.plan names no row of plans (sql/010). */
const FOREIGN_KEY_VIOLATION = '23503';
const ownQuotaOnly = () => invalidField('monthly_ops', `only a tenant on plan ${PER_TENANT_QUOTA_PLAN} has a quota of its own; the others get their plan's (GET /admin/plans)`);
const newWebhookSecret = () => randomBytes(24).toString('base64url');
const noPlan = (plan: string | undefined) => invalidField('plan', `no plan ${plan}: GET /admin/plans lists them`);

/** A plan (sql/010_plans.sql): the limits each project of a tenant on it gets. */
export interface PlanInfo {
  id: string;
  name: string;
  writes_per_s: number;
  reads_per_s: number;
  backlog_share: number;
  /** The monthly operation quota of each tenant on the plan (null: none, or set per tenant for enterprise). */
  monthly_ops: number | null;
}

/** The plan whose tenants each get a quota of their own (PATCH /admin/tenants/:id {"monthly_ops": N}). */
export const PER_TENANT_QUOTA_PLAN = 'enterprise';

type TenantRow = { id: string; name: string; plan: string; monthly_ops: string | null; webhook_url: string | null; created_at: Date; updated_at: Date };
const TENANT_COLUMNS = 'id, name, plan, monthly_ops, webhook_url, created_at, updated_at';
const tenantOf = (r: TenantRow): TenantInfo => ({
  id: r.id,
  name: r.name,
  plan: r.plan,
  monthly_ops: r.monthly_ops === null ? null : Number(r.monthly_ops),
  webhook_url: r.webhook_url,
  created_at: r.created_at.toISOString(),
  updated_at: r.updated_at.toISOString(),
});
const notFound = (id: string) => new AppError('tenant_not_found', `no tenant ${id}`, { tenant: id });

export class TenantsRepo {
  constructor(
    private readonly pools: PgPools,
    private readonly controlShard: string,
  ) {}

  /**
   * A new tenant; 409 `tenant_exists` when the id is taken (by a live or a
   * deleted one). With a webhook URL, its signing secret is made and
   * answered this once.
   */
  async create(t: { id: string; name: string; plan: string; monthlyOps?: number | null | undefined; webhookUrl?: string | null | undefined }): Promise<TenantInfo & { webhook_secret?: string }> {
    if (t.monthlyOps != null && t.plan !== PER_TENANT_QUOTA_PLAN) throw ownQuotaOnly();
    const secret = t.webhookUrl ? newWebhookSecret() : null;
    try {
      const r = await this.pools.run(
        this.controlShard,
        (p) =>
          p.query<TenantRow>(`INSERT INTO tenants (id, name, plan, monthly_ops, webhook_url, webhook_secret) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${TENANT_COLUMNS}`, [
            t.id,
            t.name,
            t.plan,
            t.monthlyOps ?? null,
            t.webhookUrl ?? null,
            secret,
          ]),
        'tenants.create',
      );
      return { ...tenantOf(r.rows[0]!), ...(secret !== null && { webhook_secret: secret }) };
    } catch (e) {
      if ((e as { code?: string }).code === UNIQUE_VIOLATION) throw new AppError('tenant_exists', `tenant ${t.id} exists`, { tenant: t.id });
      if ((e as { code?: string }).code === FOREIGN_KEY_VIOLATION) throw noPlan(t.plan);
      throw e;
    }
  }

  /** Every plan, by id. */
  async plans(): Promise<PlanInfo[]> {
    const r = await this.pools.run(
      this.controlShard,
      (p) => p.query<PlanInfo>('SELECT id, name, writes_per_s, reads_per_s, backlog_share, monthly_ops::float8 AS monthly_ops FROM plans ORDER BY id'),
      'plans.list',
    );
    return r.rows;
  }

  async list(): Promise<TenantInfo[]> {
    const r = await this.pools.run(
      this.controlShard,
      (p) => p.query<TenantRow>(`SELECT ${TENANT_COLUMNS} FROM tenants WHERE deleted_at IS NULL ORDER BY id`),
      'tenants.list',
    );
    return r.rows.map(tenantOf);
  }

  /** A live tenant; 404 `tenant_not_found` otherwise. */
  async get(id: string): Promise<TenantInfo> {
    const r = await this.pools.run(
      this.controlShard,
      (p) => p.query<TenantRow>(`SELECT ${TENANT_COLUMNS} FROM tenants WHERE id = $1 AND deleted_at IS NULL`, [id]),
      'tenants.get',
    );
    if (!r.rows[0]) throw notFound(id);
    return tenantOf(r.rows[0]);
  }

  /**
   * Changes a live tenant's name, plan, own quota (enterprise only: 400 on
   * another plan; a tenant leaving enterprise loses it) and webhook URL (a
   * new URL gets a new signing secret, answered this once; null removes
   * it); 404 `tenant_not_found` otherwise.
   */
  async update(
    id: string,
    change: { name?: string | undefined; plan?: string | undefined; monthlyOps?: number | null | undefined; webhookUrl?: string | null | undefined },
  ): Promise<TenantInfo & { webhook_secret?: string }> {
    const secret = change.webhookUrl ? newWebhookSecret() : null;
    const r = await this.pools
      .inScope(
        this.controlShard,
        { tenant: id },
        async (c) => {
          const now = await c.query<{ plan: string }>('SELECT plan FROM tenants WHERE id = $1 AND deleted_at IS NULL FOR UPDATE', [id]);
          if (!now.rows[0]) return undefined;
          const plan = change.plan ?? now.rows[0].plan;
          if (change.monthlyOps != null && plan !== PER_TENANT_QUOTA_PLAN) throw ownQuotaOnly();
          return c.query<TenantRow>(
            `UPDATE tenants SET name = coalesce($2, name), plan = $3,
                    monthly_ops = CASE WHEN $3 <> $4 THEN NULL WHEN $5::boolean THEN $6::bigint ELSE monthly_ops END,
                    webhook_url = CASE WHEN $7::boolean THEN $8 ELSE webhook_url END,
                    webhook_secret = CASE WHEN $7::boolean THEN $9 ELSE webhook_secret END,
                    updated_at = now()
              WHERE id = $1 RETURNING ${TENANT_COLUMNS}`,
            [id, change.name ?? null, plan, PER_TENANT_QUOTA_PLAN, change.monthlyOps !== undefined, change.monthlyOps ?? null, change.webhookUrl !== undefined, change.webhookUrl ?? null, secret],
          );
        },
        'tenants.update',
      )
      .catch((e: unknown) => {
        throw (e as { code?: string }).code === FOREIGN_KEY_VIOLATION ? noPlan(change.plan) : e;
      });
    if (!r?.rows[0]) throw notFound(id);
    return { ...tenantOf(r.rows[0]), ...(secret !== null && { webhook_secret: secret }) };
  }

  /** The secret a tenant's webhooks are signed with (null: none set). */
  async webhook(id: string): Promise<{ url: string; secret: string } | undefined> {
    const r = await this.pools.run(
      this.controlShard,
      (p) => p.query<{ webhook_url: string | null; webhook_secret: string | null }>('SELECT webhook_url, webhook_secret FROM tenants WHERE id = $1 AND deleted_at IS NULL', [id]),
      'tenants.webhook',
    );
    const row = r.rows[0];
    return row?.webhook_url && row.webhook_secret ? { url: row.webhook_url, secret: row.webhook_secret } : undefined;
  }

  /** Marks a tenant and its projects deleted and revokes its keys; `default` cannot be deleted (409 `tenant_protected`). */
  async delete(id: string): Promise<void> {
    if (id === DEFAULT_TENANT) throw new AppError('tenant_protected', 'tenant default cannot be deleted', { tenant: id });
    const found = await this.pools.inScope(
      this.controlShard,
      { tenant: id },
      async (c) => {
        const r = await c.query('UPDATE tenants SET deleted_at = now(), updated_at = now() WHERE id = $1 AND deleted_at IS NULL', [id]);
        if (r.rowCount !== 1) return false;
        const projects = await c.query<{ id: string }>('UPDATE projects SET deleted_at = now() WHERE tenant_id = $1 AND deleted_at IS NULL RETURNING id', [id]);
        await c.query('UPDATE api_keys SET revoked_at = now() WHERE tenant_id = $1 AND revoked_at IS NULL', [id]);
        // Each project's boards, in that project's scope (the same transaction, its setting changed per project).
        for (const p of projects.rows) {
          await c.query("SELECT set_config('app.project_id', $1, true)", [p.id]);
          await markBoardsDeleted(c);
        }
        return true;
      },
      'tenants.delete',
    );
    if (!found) throw notFound(id);
  }
}

/**
 * Marks the live boards of the transaction's project deleted (a deleted
 * project's boards get no period closes, and their ids stay taken), moving
 * the boards' revision so every replica's catalog drops them.
 */
async function markBoardsDeleted(c: { query: (text: string) => Promise<unknown> }): Promise<void> {
  await c.query(`UPDATE boards SET deleted_at = now(), updated_at = now(), revision = nextval('boards_revision_seq') WHERE deleted_at IS NULL`);
}

type ProjectRow = { id: string; name: string; created_at: Date };
const projectOf = (r: ProjectRow): ProjectInfo => ({ id: r.id, name: r.name, created_at: r.created_at.toISOString() });
const noProject = (id: string) => new AppError('project_not_found', `no project ${id}`, { project: id });

export class ProjectsRepo {
  constructor(
    private readonly pools: PgPools,
    private readonly controlShard: string,
  ) {}

  /** A new project of a live tenant; 409 `project_exists` when the tenant has (or had) one with that id. */
  async create(tenant: string, p: { id: string; name: string }): Promise<ProjectInfo> {
    try {
      const row = await this.pools.inScope(
        this.controlShard,
        { tenant },
        async (c) => {
          const t = await c.query('SELECT 1 FROM tenants WHERE id = $1 AND deleted_at IS NULL FOR SHARE', [tenant]);
          if (t.rowCount !== 1) throw notFound(tenant);
          const r = await c.query<ProjectRow>('INSERT INTO projects (tenant_id, id, name) VALUES ($1, $2, $3) RETURNING id, name, created_at', [tenant, p.id, p.name]);
          return r.rows[0]!;
        },
        'projects.create',
      );
      return projectOf(row);
    } catch (e) {
      if ((e as { code?: string }).code === UNIQUE_VIOLATION) throw new AppError('project_exists', `project ${p.id} exists`, { project: p.id });
      throw e;
    }
  }

  /** A tenant's live projects, by id. */
  async list(tenant: string): Promise<ProjectInfo[]> {
    const r = await this.pools.inScope(
      this.controlShard,
      { tenant },
      (c) => c.query<ProjectRow>('SELECT id, name, created_at FROM projects WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY id', [tenant]),
      'projects.list',
    );
    return r.rows.map(projectOf);
  }

  /** A live tenant's live project ids, by id; undefined when the tenant is not live. */
  async liveIds(tenant: string): Promise<string[] | undefined> {
    return (await this.live(tenant))?.ids;
  }

  /** A live tenant's live project ids (by id) and the limits its plan gives each; undefined when the tenant is not live. */
  async live(tenant: string): Promise<{ ids: string[]; limits: ProjectLimits } | undefined> {
    const r = await this.pools.inScope(
      this.controlShard,
      { tenant },
      (c) =>
        c.query<{ id: string | null; plan: string; writes_per_s: number; reads_per_s: number; backlog_share: number; monthly_ops: string | null }>(
          `SELECT p.id, t.plan, pl.writes_per_s, pl.reads_per_s, pl.backlog_share, coalesce(t.monthly_ops, pl.monthly_ops) AS monthly_ops
             FROM tenants t JOIN plans pl ON pl.id = t.plan
             LEFT JOIN projects p ON p.tenant_id = t.id AND p.deleted_at IS NULL
            WHERE t.id = $1 AND t.deleted_at IS NULL ORDER BY p.id`,
          [tenant],
        ),
      'projects.ids',
    );
    const first = r.rows[0];
    if (!first) return undefined;
    return {
      ids: r.rows.flatMap((x) => (x.id === null ? [] : [x.id])),
      limits: { plan: first.plan, writesPerS: first.writes_per_s, readsPerS: first.reads_per_s, backlogShare: first.backlog_share, monthlyOps: Number(first.monthly_ops ?? 0) },
    };
  }

  /** Marks a project deleted and revokes its keys; 404 `project_not_found` when the tenant has no such live project. */
  async delete(tenant: string, id: string): Promise<void> {
    if (tenant === DEFAULT_TENANT && id === DEFAULT_PROJECT_ID) throw new AppError('project_protected', 'project default/default cannot be deleted', { project: id });
    // In the project's own scope: its boards (row-level security per project) go with it.
    const found = await this.pools.inScope(
      this.controlShard,
      { tenant, project: id },
      async (c) => {
        const r = await c.query('UPDATE projects SET deleted_at = now() WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL', [tenant, id]);
        if (r.rowCount !== 1) return false;
        await c.query('UPDATE api_keys SET revoked_at = now() WHERE tenant_id = $1 AND project_id = $2 AND revoked_at IS NULL', [tenant, id]);
        await markBoardsDeleted(c);
        return true;
      },
      'projects.delete',
    );
    if (!found) throw noProject(id);
  }
}
