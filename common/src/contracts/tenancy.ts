/**
 * Tenants and projects: who owns a piece of data.
 *
 * A tenant is a customer of the installation (a studio); a project is one
 * game or one environment of it, and owns players, accounts, boards and
 * their periods, keys, webhooks, history and live streams. A project is
 * named by its tenant and its own id: two tenants may each have a project
 * `live`, and they are two projects.
 *
 * The installation always has tenant `default` with project `default`:
 * what has no credentials naming another project, and every piece of data
 * written before tenancy, is that project's.
 */

/** Tenant and project ids. */
export const TENANCY_ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** One project: the owner of a piece of data. */
export interface ProjectRef {
  readonly tenant: string;
  readonly project: string;
}

export const DEFAULT_TENANT = 'default';
export const DEFAULT_PROJECT_ID = 'default';
/** The installation's own project (see the module comment). */
export const DEFAULT_PROJECT: ProjectRef = Object.freeze({ tenant: DEFAULT_TENANT, project: DEFAULT_PROJECT_ID });

/**
 * A project as one string, `<tenant>/<project>`: the form key names, events,
 * channels and token claims carry. `/` is in neither id, so it splits back
 * unambiguously ({@link parseProjectScope}).
 */
export function projectScope(p: ProjectRef): string {
  return `${p.tenant}/${p.project}`;
}

/** The project of a {@link projectScope} string; undefined when it is not one. */
export function parseProjectScope(scope: string): ProjectRef | undefined {
  const i = scope.indexOf('/');
  if (i < 0) return undefined;
  const tenant = scope.slice(0, i);
  const project = scope.slice(i + 1);
  return TENANCY_ID.test(tenant) && TENANCY_ID.test(project) ? { tenant, project } : undefined;
}

export function isDefaultProject(p: ProjectRef): boolean {
  return p.tenant === DEFAULT_TENANT && p.project === DEFAULT_PROJECT_ID;
}

export function sameProject(a: ProjectRef, b: ProjectRef): boolean {
  return a.tenant === b.tenant && a.project === b.project;
}

/**
 * API key kinds, from the most to the least powerful:
 * - `platform`: the operator of the installation: tenants and their plans, any tenant;
 * - `admin`: a tenant's administrator: its projects, boards, keys, webhooks, usage, audit;
 * - `server`: a game server of one project: authoritative writes for any of its players, reads;
 * - `client`: publishable, inside a game client: registration, login and public reads of one project.
 */
export const KEY_KINDS = ['platform', 'admin', 'server', 'client'] as const;
export type KeyKind = (typeof KEY_KINDS)[number];

/**
 * The rate limits a project gets from its tenant's plan (sql/010_plans.sql,
 * where each is explained). 0 writes or reads per second: no such bucket;
 * a backlog share of 1: the shard's whole backlog.
 */
export interface ProjectLimits {
  readonly plan: string;
  readonly writesPerS: number;
  readonly readsPerS: number;
  readonly backlogShare: number;
  /**
   * The tenant's monthly operation quota over all its projects (its plan's,
   * or an enterprise tenant's own: sql/011_usage.sql); 0 = none.
   */
  readonly monthlyOps: number;
}

/** No project limits: plan `default`, the installation's own. */
export const NO_PROJECT_LIMITS: ProjectLimits = Object.freeze({ plan: 'default', writesPerS: 0, readsPerS: 0, backlogShare: 1, monthlyOps: 0 });
