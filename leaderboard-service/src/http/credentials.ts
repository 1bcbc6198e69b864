/**
 * Credentials decide the project: the one place where a request's API key
 * (`X-Api-Key`, or `?key=` on the live routes: EventSource cannot send
 * headers) and player token (`Authorization: Bearer`, or a live `?ticket=`
 * on the live routes) become its {@link Caller}: its project, the key's
 * kind, the player. Both the hot path and the express app call
 * {@link Credentials.resolve} before reading a body, and handlers read the
 * result with {@link callerOf} / {@link projectOf}.
 *
 * - A server or client key's project is the request's; a platform or admin
 *   key names one with `?project=` (a platform key also `?tenant=`, default
 *   `default`), else it is the tenant's only project (tenant `default`:
 *   project `default`). A token alone gives its own project; nothing at all
 *   is project default/default.
 * - A token of another project than the key's is 401 `invalid_token`.
 * - A key that is sent is checked: malformed, unknown, revoked, or of a
 *   deleted tenant or project, it is 401 `invalid_api_key`, all alike.
 * - A tenant or project another tenant's key names is 404 like one that
 *   does not exist.
 *
 * Key lookups (and a tenant's list of projects with its plan's limits,
 * which every caller carries: {@link Caller.limits}) are remembered for
 * API_KEY_CACHE_MS (default 900 ms, at most 10,000 keys, the oldest
 * forgotten first), so a game server's writes cost no Postgres query each,
 * and a revocation, a deleted project or a plan change is seen by every
 * replica within a second. A short life rather than a polled revision:
 * nothing to go stale when a poll races a commit, no poller, and a busy key
 * costs each replica about one indexed query a second.
 */
import type { IncomingMessage } from 'node:http';
import { AppError, DEFAULT_PROJECT, DEFAULT_TENANT, NO_PROJECT_LIMITS, sameProject, TENANCY_ID, type KeyKind, type ProjectLimits, type ProjectRef } from '@lb/common/contracts';
import { isStoreUnavailable, verifyBearer, verifyLiveTicket, type TokenIdentity, type TokenSettings } from '@lb/common/platform';
import { API_KEY_FORMAT, hashApiKey, type ApiKeysRepo, type LiveKey } from '../db/api-keys-repo.js';
import type { ProjectsRepo } from '../db/tenants-repo.js';

/** Who a request is, as its credentials say. */
export interface Caller {
  /**
   * The request's project; undefined only for a platform or admin key whose
   * tenant has several projects (or none) and no `?project=`: routes that
   * need one then answer 400 (see {@link projectOf}).
   */
  readonly project: ProjectRef | undefined;
  /** The tenant the request acts in: the project's, or an admin key's own, or a platform key's `?tenant=`. */
  readonly tenant: string;
  /** The verified key, if one was sent. */
  readonly key: LiveKey | undefined;
  /** The verified player (a token, or a live ticket on the live routes), if one was sent. */
  readonly player: TokenIdentity | undefined;
  /** The limits the tenant's plan gives each of its projects (sql/010_plans.sql). */
  readonly limits: ProjectLimits;
}

/** What a request carries, as the resolver reads it. */
export interface Presented {
  readonly headers: IncomingMessage['headers'];
  /** The query string. */
  readonly query: URLSearchParams;
  /** A live route: the key may come as `?key=` (a client key only) and the player as `?ticket=`. */
  readonly live?: boolean | undefined;
}

/** Most keys a process remembers. */
const KEY_CACHE_SIZE = 10_000;

export class Credentials {
  private readonly keys = new Map<string, { key: LiveKey; until: number }>();
  private readonly projects = new Map<string, { live: LiveTenant | undefined; until: number }>();

  constructor(
    private readonly repo: ApiKeysRepo,
    private readonly projectsRepo: ProjectsRepo,
    private readonly token: TokenSettings,
    private readonly cacheMs: number,
  ) {}

  /** The request's {@link Caller}; 401/404 as the module comment says. Postgres down is StoreUnavailable (503). */
  async resolve(p: Presented): Promise<Caller> {
    const player = this.player(p);
    const header = p.headers['x-api-key'];
    let raw: string | string[] | undefined = header;
    let fromQuery = false;
    if (raw === undefined && p.live) {
      const q = p.query.getAll('key');
      if (q.length > 0) {
        raw = q.length === 1 ? q[0] : q;
        fromQuery = true;
      }
    }
    if (raw === undefined) {
      if (!player) return { project: DEFAULT_PROJECT, tenant: DEFAULT_TENANT, key: undefined, player: undefined, limits: await this.limitsOf(DEFAULT_TENANT) };
      // A token outlives its project only by the cache's life: a deleted project's players are refused.
      const { tenant, project } = player.project;
      if (tenant !== DEFAULT_TENANT && !(await this.hasProject(tenant, project))) throw new AppError('invalid_token', "the token's project no longer exists");
      return { project: player.project, tenant, key: undefined, player, limits: await this.limitsOf(tenant) };
    }
    const key = await this.verify(raw);
    // A key in a URL ends up in logs and histories: only a publishable one may travel there.
    if (fromQuery && key.kind !== 'client') throw invalidKey();
    const { tenant, project } = await this.scopeOf(key, p.query, player);
    if (player && project && !sameProject(player.project, project)) throw new AppError('invalid_token', 'the token is not of this key\'s project');
    return { project, tenant, key, player, limits: await this.limitsOf(tenant) };
  }

  /**
   * The limits of a tenant's projects (its plan's). Postgres down does not
   * stop a request that needs nothing else from it (the default project's
   * reads and writes are served from Redis): the limits last seen stay in
   * force for another cache life, and with none seen yet there are none.
   */
  private async limitsOf(tenant: string): Promise<ProjectLimits> {
    try {
      return (await this.tenant(tenant))?.limits ?? NO_PROJECT_LIMITS;
    } catch (e) {
      if (!isStoreUnavailable(e)) throw e;
      const stale = this.projects.get(tenant);
      if (stale?.live) this.projects.set(tenant, { live: stale.live, until: Date.now() + this.cacheMs });
      return stale?.live?.limits ?? NO_PROJECT_LIMITS;
    }
  }

  /** A live key by its text; 401 `invalid_api_key` for anything else. */
  async verify(raw: string | string[]): Promise<LiveKey> {
    if (typeof raw !== 'string' || !API_KEY_FORMAT.test(raw)) throw invalidKey();
    const hash = hashApiKey(raw);
    const now = Date.now();
    const hit = this.keys.get(hash);
    if (hit && hit.until > now) return hit.key;
    const key = await this.repo.findLive(hash);
    this.keys.delete(hash);
    if (!key) throw invalidKey();
    if (this.keys.size >= KEY_CACHE_SIZE) this.keys.delete(this.keys.keys().next().value!);
    this.keys.set(hash, { key, until: now + this.cacheMs });
    return key;
  }

  /** How long a replica may act on a key or a project list it remembers (API_KEY_CACHE_MS). */
  get cacheLifeMs(): number {
    return this.cacheMs;
  }

  /** Forgets what this replica remembers of a tenant's projects (after it changed them itself). */
  forgetProjects(tenant: string): void {
    this.projects.delete(tenant);
  }

  /** The player of a token (or a live ticket on a live route), if one is sent. */
  private player(p: Presented): TokenIdentity | undefined {
    if (p.headers.authorization !== undefined) return verifyBearer(p.headers.authorization, this.token);
    if (!p.live) return undefined;
    const t = p.query.getAll('ticket');
    if (t.length === 0 || t[0] === '') return undefined;
    if (t.length > 1) throw new AppError('invalid_token', 'ticket: give it once');
    return verifyLiveTicket(t[0]!, this.token);
  }

  /** The tenant and project a key acts on. */
  private async scopeOf(key: LiveKey, query: URLSearchParams, player: TokenIdentity | undefined): Promise<{ tenant: string; project: ProjectRef | undefined }> {
    if (key.kind === 'server' || key.kind === 'client') return { tenant: key.tenant, project: { tenant: key.tenant, project: key.project! } };
    const askedTenant = single(query, 'tenant');
    const askedProject = single(query, 'project');
    let tenant = key.tenant;
    if (askedTenant !== undefined && askedTenant !== key.tenant) {
      // An admin key never reaches another tenant: its name answers like a missing one.
      if (key.kind !== 'platform' || !TENANCY_ID.test(askedTenant)) throw new AppError('tenant_not_found', `no tenant ${askedTenant}`, { tenant: askedTenant });
      tenant = askedTenant;
    }
    const ids = (await this.tenant(tenant))?.ids;
    if (!ids) throw new AppError('tenant_not_found', `no tenant ${tenant}`, { tenant });
    if (askedProject !== undefined) {
      if (!(await this.hasProject(tenant, askedProject))) throw new AppError('project_not_found', `no project ${askedProject}`, { project: askedProject });
      return { tenant, project: { tenant, project: askedProject } };
    }
    if (player && player.project.tenant === tenant) return { tenant, project: player.project };
    if (tenant === DEFAULT_TENANT) return { tenant, project: DEFAULT_PROJECT };
    return { tenant, project: ids.length === 1 ? { tenant, project: ids[0]! } : undefined };
  }

  /** Whether a tenant's project is live: a project made since the list was remembered (on another replica, say) is found by asking again. */
  private async hasProject(tenant: string, project: string): Promise<boolean> {
    if ((await this.tenant(tenant))?.ids.includes(project)) return true;
    return (await this.tenant(tenant, true))?.ids.includes(project) ?? false;
  }

  /** A live tenant's live project ids and its plan's limits; undefined when the tenant is not live. */
  private async tenant(tenant: string, fresh = false): Promise<LiveTenant | undefined> {
    const now = Date.now();
    const hit = this.projects.get(tenant);
    if (hit && hit.until > now && !fresh) return hit.live;
    const live = await this.projectsRepo.live(tenant);
    this.projects.delete(tenant);
    if (this.projects.size >= KEY_CACHE_SIZE) this.projects.delete(this.projects.keys().next().value!);
    this.projects.set(tenant, { live, until: now + this.cacheMs });
    return live;
  }
}

/** What a replica remembers of a live tenant. */
interface LiveTenant {
  readonly ids: readonly string[];
  readonly limits: ProjectLimits;
}

/** A query parameter given once; 400 when given twice. */
function single(query: URLSearchParams, name: string): string | undefined {
  const all = query.getAll(name);
  if (all.length > 1) throw new AppError('invalid_query', `${name}: give it once`, { field: name });
  return all[0];
}

function invalidKey(): AppError {
  return new AppError('invalid_api_key', 'a valid X-Api-Key is required');
}

// ------------------------------------------------------------ the accessors handlers use

const resolved = new WeakMap<IncomingMessage, Caller>();

/** Records a request's caller (the pipeline does, once per request). */
export function setCaller(req: IncomingMessage, caller: Caller): void {
  resolved.set(req, caller);
}

/** A request's caller (a hot request carries its own; an express request's was recorded by the pipeline). */
export function callerOf(req: IncomingMessage | { readonly caller: Caller }): Caller {
  if ('caller' in req) return req.caller;
  const c = resolved.get(req);
  if (!c) throw new Error('callerOf: the request went past the credentials step');
  return c;
}

/** The project a request acts on; 400 `invalid_query` when its platform or admin key names none (`?project=`). */
export function projectOf(req: IncomingMessage | { readonly caller: Caller }): ProjectRef {
  const c = callerOf(req);
  if (!c.project) throw new AppError('invalid_query', `project: tenant ${c.tenant} has several projects (or none); name one with ?project=`, { field: 'project' });
  return c.project;
}

/** The kind of the request's key, if it sent one. */
export function kindOf(req: IncomingMessage | { readonly caller: Caller }): KeyKind | undefined {
  return callerOf(req).key?.kind;
}

/**
 * Refuses a request whose key is not of one of `kinds`: no key is 401
 * `invalid_api_key`, a key of another kind 403 `forbidden`.
 */
export function requireKind(caller: Caller, kinds: readonly KeyKind[]): LiveKey {
  if (!caller.key) throw invalidKey();
  if (!kinds.includes(caller.key.kind)) throw new AppError('forbidden', `a ${caller.key.kind} key cannot do this`);
  return caller.key;
}
