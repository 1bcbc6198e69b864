/**
 * Accounts and the user-id directory in Postgres, of one project each
 * (player ids are unique within a project): every query runs in the
 * project's row scope (PgPools.inScope) and is parameterised. A database
 * that cannot be reached surfaces as StoreUnavailable.
 */
import type pg from 'pg';
import type { ProjectRef } from '@lb/common/contracts';
import type { PgPools } from '@lb/common/platform';

export interface AccountRow {
  user_id: string;
  name: string;
  region: string;
  password_hash: string;
  created_at: Date;
}

export interface NewAccount {
  userId: string;
  name: string;
  region: string;
  passwordHash: string;
  homeShard: string;
  directoryShard: string;
}

/** A directory claim older than this whose account never appeared may be taken over. */
const ORPHAN_CLAIM_AGE = '1 minute';

export class AccountsRepo {
  constructor(private readonly pools: PgPools) {}

  /**
   * Creates an account of `project`, unique across shards. The user id is
   * first claimed in the directory (on the shard its hash picks), then the
   * account is written on the home shard; when both live in one database
   * this is one transaction. Returns false when the user id is taken.
   */
  async create(project: ProjectRef, a: NewAccount): Promise<boolean> {
    if (this.pools.sameDatabase(a.homeShard, a.directoryShard)) {
      try {
        return await this.pools.inScope(a.homeShard, project, async (c) => {
          if (!(await this.claim(project, c, a))) return false;
          await this.insertAccount(c, a);
          return true;
        });
      } catch (e) {
        if ((e as { code?: string }).code === '23505') return false;
        throw e;
      }
    }
    if (!(await this.pools.inScope(a.directoryShard, project, (dir) => this.claim(project, dir, a)))) return false;
    try {
      await this.pools.inScope(a.homeShard, project, (home) => this.insertAccount(home, a));
      return true;
    } catch (e) {
      // Release the claim so that the user id is not lost to a failed write.
      await this.releaseClaim(project, a).catch(() => {});
      if ((e as { code?: string }).code === '23505') return false;
      throw e;
    }
  }

  /**
   * Undoes {@link create}: deletes the account and its directory claim, when
   * registration cannot complete (its board entry could not be written).
   */
  async remove(project: ProjectRef, a: Pick<NewAccount, 'userId' | 'homeShard' | 'directoryShard'>): Promise<void> {
    await this.pools.inScope(a.homeShard, project, (home) => home.query('DELETE FROM accounts WHERE user_id = $1', [a.userId]));
    await this.releaseClaim(project, a);
  }

  private async releaseClaim(project: ProjectRef, a: Pick<NewAccount, 'userId' | 'homeShard' | 'directoryShard'>): Promise<void> {
    await this.pools.inScope(a.directoryShard, project, (dir) =>
      dir.query('DELETE FROM user_directory WHERE user_id = $1 AND shard_id = $2', [a.userId, a.homeShard]),
    );
  }

  /**
   * Claims a user id. A claim left by a process that died before writing the
   * account (older than ORPHAN_CLAIM_AGE, no account on its shard) is taken over.
   */
  private async claim(project: ProjectRef, c: pg.PoolClient, a: NewAccount): Promise<boolean> {
    const ins = await c.query(
      `INSERT INTO user_directory (user_id, region, shard_id) VALUES ($1, $2, $3)
       ON CONFLICT (tenant_id, project_id, user_id) DO NOTHING`,
      [a.userId, a.region, a.homeShard],
    );
    if (ins.rowCount === 1) return true;
    const old = await c.query<{ shard_id: string; created_at: Date }>(
      `SELECT shard_id, created_at FROM user_directory
       WHERE user_id = $1 AND created_at < now() - $2::interval`,
      [a.userId, ORPHAN_CLAIM_AGE],
    );
    const row = old.rows[0];
    if (!row || (await this.find(project, row.shard_id, a.userId))) return false;
    const upd = await c.query(
      `UPDATE user_directory SET region = $2, shard_id = $3, created_at = now()
       WHERE user_id = $1 AND created_at = $4`,
      [a.userId, a.region, a.homeShard, row.created_at],
    );
    return upd.rowCount === 1;
  }

  private async insertAccount(c: pg.PoolClient, a: NewAccount): Promise<void> {
    await c.query(
      `INSERT INTO accounts (user_id, name, region, password_hash) VALUES ($1, $2, $3, $4)`,
      [a.userId, a.name, a.region, a.passwordHash],
    );
  }

  /** The project's account on one shard, if any. */
  async find(project: ProjectRef, shardId: string, userId: string): Promise<AccountRow | undefined> {
    const r = await this.pools.inScope(shardId, project, (c) =>
      c.query<AccountRow>('SELECT user_id, name, region, password_hash, created_at FROM accounts WHERE user_id = $1', [userId]),
    );
    return r.rows[0];
  }

  /** The project's account wherever it lives: one primary-key lookup per database, in parallel. */
  async findAnywhere(project: ProjectRef, userId: string): Promise<AccountRow | undefined> {
    const found = await Promise.all(this.pools.distinct().map(({ shardId }) => this.find(project, shardId, userId)));
    return found.find((r) => r !== undefined);
  }
}
