/**
 * The audit log (sql/012_audit.sql): every administrative action, appended
 * to `audit_log` in the control-plane database and never changed (the
 * services' role may insert and read it, nothing else).
 *
 * A row is the tenant's the action concerns, under row-level security on
 * `app.tenant_id`: {@link AuditRepo.append} and a tenant's
 * {@link AuditRepo.list} run in that tenant's scope ({@link PgPools.inScope});
 * the list of every tenant's entries (the platform's) goes through the
 * SECURITY DEFINER function `lb_audit_entries`.
 *
 * What an entry holds is what its caller passes: a key's id and name, never
 * its secret; a change's before/after are the API's own answers (a tenant,
 * a project, a key's listing, a board's definition), none of which carries
 * a secret (a key's text, a board's webhook signing secret, a password).
 */
import type pg from 'pg';
import type { PgPools } from '@lb/common/platform';
import type { TenantInfo } from './tenants-repo.js';

/** Every action the audit log records, named once. */
export const AUDIT_ACTIONS = [
  'tenant.created',
  'tenant.updated',
  'tenant.deleted',
  'project.created',
  'project.deleted',
  'key.created',
  'key.revoked',
  'board.created',
  'board.updated',
  'board.deleted',
  // Recorded in addition to tenant.updated when a change moves the tenant's plan or its quota.
  'plan.changed',
  'webhook.replayed',
  'login.unlocked',
  'quota.warning',
  'quota.exceeded',
] as const;

export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** Whether a string is one of {@link AUDIT_ACTIONS}. */
export function isAuditAction(v: unknown): v is AuditAction {
  return typeof v === 'string' && (AUDIT_ACTIONS as readonly string[]).includes(v);
}

/** Who acted: an API key's id and name; the admin CLI is {@link CLI_ACTOR}. */
export interface AuditActor {
  id: string | null;
  name: string;
}

/** The admin CLI (`npm run admin`): no key, named `cli`. */
export const CLI_ACTOR: AuditActor = { id: null, name: 'cli' };

/** One action to record. */
export interface AuditEntry {
  /** The tenant the action concerns (its admins see the entry). */
  tenant: string;
  project?: string | null | undefined;
  /** The acting key (id and name, never the secret); null for the system's own actions (quota events). */
  key?: AuditActor | null | undefined;
  action: AuditAction;
  /** What was acted on, e.g. `board weekly`, `key 1a2b3c4d`, `quota 2026-12 75%`. */
  target: string;
  /** Before/after for an edit; `after` alone for a creation, `before` alone for a deletion. */
  change?: { before?: unknown; after?: unknown } | null | undefined;
  requestId?: string | null | undefined;
}

/** One entry as GET /admin/audit answers it. */
export interface AuditRecord {
  /** The paging key (a bigint, as a string). */
  id: string;
  at: string;
  tenant: string;
  project: string | null;
  key: AuditActor | null;
  action: AuditAction;
  target: string;
  change: { before?: unknown; after?: unknown } | null;
  request_id: string | null;
}

export interface AuditQuery {
  /** At most this many entries (the caller bounds it). */
  limit: number;
  /** Only entries with a smaller id (the previous page's `next_before`). */
  before?: string | number | undefined;
  action?: AuditAction | undefined;
}

/** An action as its maker describes it; the recorder adds who acted and the request id. */
export type AuditFact = Omit<AuditEntry, 'key' | 'requestId'>;

/** What a tenant's change records: tenant.updated, and plan.changed too when its plan or its own quota moved. */
export function tenantChangeFacts(before: TenantInfo, after: TenantInfo): AuditFact[] {
  const target = `tenant ${after.id}`;
  const facts: AuditFact[] = [{ tenant: after.id, action: 'tenant.updated', target, change: { before, after } }];
  const [was, is] = [planOf(before), planOf(after)];
  if (JSON.stringify(was) !== JSON.stringify(is)) facts.push({ tenant: after.id, action: 'plan.changed', target, change: { before: was, after: is } });
  return facts;
}

/** What plan.changed records of a tenant: its plan, and its own monthly quota when it has one. */
function planOf(t: TenantInfo): Record<string, unknown> {
  const fields = t as unknown as Record<string, unknown>;
  return { plan: t.plan, ...('monthly_ops' in fields && { monthly_ops: fields.monthly_ops }) };
}

/** A new key's key.created: its listing (id, kind, name, project), never its text. */
export function keyCreatedFact(tenant: string, made: { id: string; kind: string; name: string; project: string | null; key: string }): AuditFact {
  const { key: _secret, ...listed } = made;
  return { tenant, project: made.project, action: 'key.created', target: `key ${made.id}`, change: { after: listed } };
}

/** The quota events' target: one per tenant per month (`YYYY-MM`, UTC) per threshold (percent), which makes them once-only. */
export function quotaTarget(month: string, percent: number): string {
  return `quota ${month} ${percent}%`;
}

type AuditRow = {
  id: string;
  at: Date;
  tenant_id: string;
  project_id: string | null;
  key_id: string | null;
  key_name: string | null;
  action: AuditAction;
  target: string;
  change: AuditRecord['change'];
  request_id: string | null;
};

const COLUMNS = 'id, at, tenant_id, project_id, key_id, key_name, action, target, change, request_id';

const recordOf = (r: AuditRow): AuditRecord => ({
  id: String(r.id),
  at: r.at.toISOString(),
  tenant: r.tenant_id,
  project: r.project_id,
  key: r.key_name === null && r.key_id === null ? null : { id: r.key_id, name: r.key_name ?? '' },
  action: r.action,
  target: r.target,
  change: r.change,
  request_id: r.request_id,
});

/** The quota events: at most one row each per tenant, action and target (sql/012's partial unique index). */
const ONCE_ACTIONS: readonly AuditAction[] = ['quota.warning', 'quota.exceeded'];

export class AuditRepo {
  constructor(
    private readonly pools: PgPools,
    private readonly controlShard: string,
  ) {}

  /**
   * Records an action, in the entry's tenant's scope. With `once` (quota
   * events only) an entry already recorded with the same tenant, action and
   * target is left alone: the answer says whether this call inserted it.
   * A failure throws (the caller's request fails with it: an action is
   * never silently unrecorded).
   */
  async append(entry: AuditEntry, opts: { once?: boolean } = {}): Promise<boolean> {
    return this.pools.inScope(this.controlShard, { tenant: entry.tenant }, (c) => appendIn(c, entry, opts), 'audit.append');
  }

  /**
   * A tenant's entries (`tenant` undefined: every tenant's), newest first.
   * `before` is an id: only smaller ones are answered.
   */
  async list(tenant: string | undefined, q: AuditQuery): Promise<AuditRecord[]> {
    const before = q.before === undefined ? null : String(q.before);
    const action = q.action ?? null;
    const r =
      tenant === undefined
        ? await this.pools.run(this.controlShard, (p) => p.query<AuditRow>(`SELECT ${COLUMNS} FROM lb_audit_entries($1, $2, $3)`, [q.limit, before, action]), 'audit.list_all')
        : await this.pools.inScope(
            this.controlShard,
            { tenant },
            (c) =>
              c.query<AuditRow>(
                `SELECT ${COLUMNS} FROM audit_log
                  WHERE tenant_id = $1 AND ($2::bigint IS NULL OR id < $2::bigint) AND ($3::text IS NULL OR action = $3::text)
                  ORDER BY id DESC LIMIT $4`,
                [tenant, before, action, q.limit],
              ),
            'audit.list',
          );
    return r.rows.map(recordOf);
  }
}

/**
 * Inserts an entry on a client whose transaction is already in the
 * entry's tenant's scope (row-level security refuses any other tenant):
 * for a caller that records an action in the transaction making it.
 */
export async function appendIn(c: pg.ClientBase, entry: AuditEntry, opts: { once?: boolean } = {}): Promise<boolean> {
  if (opts.once && !ONCE_ACTIONS.includes(entry.action)) throw new Error(`audit: only ${ONCE_ACTIONS.join(' and ')} are recorded once`);
  const r = await c.query(
    `INSERT INTO audit_log (tenant_id, project_id, key_id, key_name, action, target, change, request_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)
     ${opts.once ? `ON CONFLICT (tenant_id, action, target) WHERE action IN ('quota.warning', 'quota.exceeded') DO NOTHING` : ''}`,
    [
      entry.tenant,
      entry.project ?? null,
      entry.key?.id ?? null,
      entry.key?.name ?? null,
      entry.action,
      entry.target,
      entry.change == null ? null : JSON.stringify(entry.change),
      entry.requestId ?? null,
    ],
  );
  return r.rowCount === 1;
}
