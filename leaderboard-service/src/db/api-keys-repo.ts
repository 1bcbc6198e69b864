/**
 * API keys in the control-plane database. Only a key's SHA-256 is stored;
 * the key itself is shown once, when it is created.
 *
 * Keys are rows of a tenant (row-level security on `app.tenant_id`, see
 * sql/009): every call but {@link ApiKeysRepo.findLive} runs in the
 * tenant's scope ({@link PgPools.inScope}) and names the tenant in its
 * statement too (a role that bypasses row-level security still touches
 * only that tenant's rows); the lookup by hash, made before
 * the tenant is known, goes through the SECURITY DEFINER function
 * `api_key_by_hash`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { DEFAULT_TENANT, type KeyKind, type ProjectRef } from '@lb/common/contracts';
import type { PgPools } from '@lb/common/platform';

export interface ApiKeyInfo {
  id: string;
  kind: KeyKind;
  name: string;
  /** The key's project (server and client keys), else null. */
  project: string | null;
  created_at: string;
  revoked_at: string | null;
}

/** A live key, as the lookup by hash finds it. */
export interface LiveKey {
  id: string;
  name: string;
  kind: KeyKind;
  tenant: string;
  /** Server and client keys' project; undefined for platform and admin keys. */
  project: string | undefined;
  /** The tenant's plan. */
  plan: string;
}

/** SHA-256 of a key, hex: what is stored and looked up. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** `lbk_<id>_<secret>`: the id names the key in lists, the 192-bit secret makes it unguessable. */
export const API_KEY_FORMAT = /^lbk_[a-z0-9]{8}_[A-Za-z0-9_-]{32}$/;

/** What a new key is: platform keys are the installation's (tenant `default`), admin keys a tenant's, server and client keys a project's. */
export type NewKey = { kind: 'platform' } | { kind: 'admin'; tenant: string } | { kind: 'server' | 'client'; project: ProjectRef };

export class ApiKeysRepo {
  constructor(
    private readonly pools: PgPools,
    private readonly controlShard: string,
  ) {}

  /** Creates a key (a platform key unless `what` says otherwise); the returned `key` is the only time it exists in clear. */
  async create(name: string, what: NewKey = { kind: 'platform' }): Promise<{ id: string; kind: KeyKind; name: string; project: string | null; key: string }> {
    const id = randomBytes(4).toString('hex');
    const key = `lbk_${id}_${randomBytes(24).toString('base64url')}`;
    const tenant = what.kind === 'platform' ? DEFAULT_TENANT : what.kind === 'admin' ? what.tenant : what.project.tenant;
    const project = what.kind === 'server' || what.kind === 'client' ? what.project.project : null;
    await this.pools.inScope(
      this.controlShard,
      { tenant },
      (c) => c.query('INSERT INTO api_keys (id, name, key_hash, kind, tenant_id, project_id) VALUES ($1, $2, $3, $4, $5, $6)', [id, name, hashApiKey(key), what.kind, tenant, project]),
      'api_keys.create',
    );
    return { id, kind: what.kind, name, project, key };
  }

  /** A tenant's keys (platform keys are tenant `default`'s), oldest first; `withPlatform` false leaves platform keys out. */
  async list(tenant: string = DEFAULT_TENANT, withPlatform = true): Promise<ApiKeyInfo[]> {
    const r = await this.pools.inScope(
      this.controlShard,
      { tenant },
      (c) =>
        c.query<{ id: string; kind: KeyKind; name: string; project_id: string | null; created_at: Date; revoked_at: Date | null }>(
          `SELECT id, kind, name, project_id, created_at, revoked_at FROM api_keys WHERE tenant_id = $1 AND ($2 OR kind <> 'platform') ORDER BY created_at, id`,
          [tenant, withPlatform],
        ),
      'api_keys.list',
    );
    return r.rows.map((x) => ({
      id: x.id,
      kind: x.kind,
      name: x.name,
      project: x.project_id,
      created_at: x.created_at.toISOString(),
      revoked_at: x.revoked_at?.toISOString() ?? null,
    }));
  }

  /** Revokes a key of the tenant; false when it has no such live key (or, `withPlatform` false, it is a platform key). */
  async revoke(id: string, tenant: string = DEFAULT_TENANT, withPlatform = true): Promise<boolean> {
    const r = await this.pools.inScope(
      this.controlShard,
      { tenant },
      (c) => c.query(`UPDATE api_keys SET revoked_at = now() WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL AND ($3 OR kind <> 'platform')`, [tenant, id, withPlatform]),
      'api_keys.revoke',
    );
    return r.rowCount === 1;
  }

  /** The live key with this hash, if any: its own, its tenant's and its project's rows all live. */
  async findLive(hash: string): Promise<LiveKey | undefined> {
    const r = await this.pools.run(
      this.controlShard,
      (p) =>
        p.query<{ id: string; name: string; kind: KeyKind; tenant_id: string; project_id: string | null; plan: string }>(
          'SELECT id, name, kind, tenant_id, project_id, plan FROM api_key_by_hash($1)',
          [hash],
        ),
      'api_keys.find',
    );
    const row = r.rows[0];
    return row && { id: row.id, name: row.name, kind: row.kind, tenant: row.tenant_id, project: row.project_id ?? undefined, plan: row.plan };
  }
}
