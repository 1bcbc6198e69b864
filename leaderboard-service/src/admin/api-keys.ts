/**
 * Checks `X-Api-Key`. A key found live is remembered for API_KEY_CACHE_MS,
 * so a game server submitting scores costs no Postgres query per write; a
 * revocation takes effect within that time. Every failure — no header, a
 * malformed, unknown or revoked key — is the same 401 `invalid_api_key`,
 * so nothing tells a caller which.
 */
import { AppError } from '@lb/common/contracts';
import { API_KEY_FORMAT, hashApiKey, type ApiKeysRepo } from '../db/api-keys-repo.js';

export interface AdminIdentity {
  keyId: string;
  name: string;
}

export class ApiKeyVerifier {
  private readonly cache = new Map<string, { who: AdminIdentity; until: number }>();

  constructor(
    private readonly repo: ApiKeysRepo,
    private readonly cacheMs: number,
  ) {}

  /** The key's owner; 401 `invalid_api_key` for anything else. Postgres down is StoreUnavailable (503). */
  async verify(header: string | string[] | undefined): Promise<AdminIdentity> {
    if (typeof header !== 'string' || !API_KEY_FORMAT.test(header)) throw invalid();
    const hash = hashApiKey(header);
    const now = Date.now();
    const hit = this.cache.get(hash);
    if (hit && hit.until > now) return hit.who;
    const row = await this.repo.findLive(hash);
    if (!row) {
      this.cache.delete(hash);
      throw invalid();
    }
    const who = { keyId: row.id, name: row.name };
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(hash, { who, until: now + this.cacheMs });
    return who;
  }
}

function invalid(): AppError {
  return new AppError('invalid_api_key', 'a valid X-Api-Key is required');
}
