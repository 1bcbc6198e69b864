/**
 * Admin API keys in the control-plane database. Only a key's SHA-256 is
 * stored; the key itself is shown once, when it is created.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { PgPools } from '@lb/common/platform';

export interface ApiKeyInfo {
  id: string;
  name: string;
  created_at: string;
  revoked_at: string | null;
}

/** SHA-256 of a key, hex: what is stored and looked up. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** `lbk_<id>_<secret>`: the id names the key in lists, the 192-bit secret makes it unguessable. */
export const API_KEY_FORMAT = /^lbk_[a-z0-9]{8}_[A-Za-z0-9_-]{32}$/;

export class ApiKeysRepo {
  constructor(
    private readonly pools: PgPools,
    private readonly controlShard: string,
  ) {}

  /** Creates a key; the returned `key` is the only time it exists in clear. */
  async create(name: string): Promise<{ id: string; name: string; key: string }> {
    const id = randomBytes(4).toString('hex');
    const key = `lbk_${id}_${randomBytes(24).toString('base64url')}`;
    await this.pools.run(this.controlShard, (p) => p.query('INSERT INTO api_keys (id, name, key_hash) VALUES ($1, $2, $3)', [id, name, hashApiKey(key)]));
    return { id, name, key };
  }

  async list(): Promise<ApiKeyInfo[]> {
    const r = await this.pools.run(this.controlShard, (p) =>
      p.query<{ id: string; name: string; created_at: Date; revoked_at: Date | null }>('SELECT id, name, created_at, revoked_at FROM api_keys ORDER BY created_at, id'),
    );
    return r.rows.map((x) => ({ id: x.id, name: x.name, created_at: x.created_at.toISOString(), revoked_at: x.revoked_at?.toISOString() ?? null }));
  }

  /** Revokes a key; false when there is no such key or it was already revoked. */
  async revoke(id: string): Promise<boolean> {
    const r = await this.pools.run(this.controlShard, (p) => p.query('UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL', [id]));
    return r.rowCount === 1;
  }

  /** The live key with this hash, if any. */
  async findLive(hash: string): Promise<{ id: string; name: string } | undefined> {
    const r = await this.pools.run(this.controlShard, (p) =>
      p.query<{ id: string; name: string }>('SELECT id, name FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL', [hash]),
    );
    return r.rows[0];
  }
}
