/**
 * Player accounts: registration and login. Passwords are hashed with
 * argon2id in a bounded number of slots (hash-slots.ts); logins are
 * throttled per user id and per client IP before any hash is computed
 * (login-guard.ts); tokens are HS256 JWTs (see @lb/common jwt).
 */
import { hash, verify } from '@node-rs/argon2';
import { ALL_TIME, AppError, StoreUnavailable, type ProjectLimits, type ProjectRef, type ShardRouter } from '@lb/common/contracts';
import { signToken, type Identity, type Logger, type TokenSettings } from '@lb/common/platform';
import type { BoardCatalog } from '../boards/catalog.js';
import type { BoardWriter } from '../boards/scores.js';
import type { BoardViews } from '../boards/views.js';
import type { AccountsRepo, NewAccount } from '../db/accounts-repo.js';
import type { HashSlots } from './hash-slots.js';
import type { LoginGuard } from './login-guard.js';

export interface Registration {
  userId: string;
  name: string;
  region: string;
  password: string;
  initialScore?: number | undefined;
  requestId: string;
  /** The project the player joins: their account, scores and token are its. */
  project: ProjectRef;
  /** Its limits (the registration's entry takes no token, but counts in the project's backlog share). */
  limits: ProjectLimits;
}

export interface AccountAnswer {
  token: string;
  user: { user_id: string; name: string; region: string; score: number };
}

export interface HashSettings {
  memoryCost: number;
  timeCost: number;
}

export interface AccountDeps {
  router: ShardRouter;
  repo: AccountsRepo;
  catalog: BoardCatalog;
  writer: BoardWriter;
  views: BoardViews;
  slots: HashSlots;
  guard: LoginGuard;
  log: Logger;
}

export class AccountService {
  /** Verified against when the user is unknown, so both failures take the same time. */
  private dummyHash: Promise<string>;

  constructor(
    private readonly deps: AccountDeps,
    private readonly token: TokenSettings,
    private readonly hashing: HashSettings,
  ) {
    this.dummyHash = hash('not-a-real-password', this.hashOptions());
  }

  private hashOptions() {
    return { memoryCost: this.hashing.memoryCost, timeCost: this.hashing.timeCost, parallelism: 1 };
  }

  /**
   * Registers a player, all or nothing: the account is committed to the
   * home shard's Postgres, then the player is placed on the board `main`
   * (the home region's view and GLOBAL) with `initialScore` or 0 by one
   * `insert` (set if absent) of the board engine, which also emits the
   * event that persists the entry; it takes no token. If that write
   * is refused or the shard does not answer, the account is deleted again
   * and the error is the answer: nothing of the registration remains.
   */
  async register(r: Registration): Promise<AccountAnswer> {
    const identity: Identity = { userId: r.userId, name: r.name, region: r.region };
    const home = this.deps.router.homeShard(r.userId, r.region);
    // Fail before the expensive part when the board cannot be written anyway.
    if (!this.deps.writer.homeReady(identity)) throw new StoreUnavailable('redis', home.id);
    const passwordHash = await this.deps.slots.run(() => hash(r.password, this.hashOptions()));
    const account: NewAccount = {
      userId: r.userId,
      name: r.name,
      region: r.region,
      passwordHash,
      homeShard: home.id,
      directoryShard: this.deps.router.hashShard(r.userId).id,
    };
    if (!(await this.deps.repo.create(r.project, account))) throw new AppError('user_exists', `user ${r.userId} already exists`);
    let score: number;
    try {
      const w = await this.deps.writer.submit({
        project: r.project,
        limits: r.limits,
        board: this.deps.catalog.main(r.project),
        player: identity,
        byPlayer: false,
        value: r.initialScore ?? 0,
        op: 'insert',
        legacyOp: 'register',
        noBuckets: true,
        requestId: r.requestId,
      });
      score = w.score;
    } catch (e) {
      await this.deps.repo.remove(r.project, account).catch((err: unknown) =>
        this.deps.log.error('registration failed and its account could not be removed', { user_id: r.userId, err: err as Error }),
      );
      throw e;
    }
    return { token: signToken(identity, this.token, r.project), user: { user_id: r.userId, name: r.name, region: r.region, score } };
  }

  /**
   * Logs a player in; unknown user and wrong password answer alike, after
   * the same steps. The attempt is counted against the user id and the
   * client IP first (429 once either has failed too often), and only then
   * is a password hash computed.
   */
  async login(project: ProjectRef, userId: string, password: string, clientIp: string): Promise<AccountAnswer> {
    await this.deps.guard.admit(project, userId, clientIp);
    const row = await this.deps.repo.findAnywhere(project, userId);
    const stored = row?.password_hash ?? (await this.dummyHash);
    const ok = await this.deps.slots.run(() => verify(stored, password).catch(() => false));
    if (!row || !ok) throw new AppError('invalid_credentials', 'wrong user id or password');
    await this.deps.guard.succeeded(project, userId, clientIp);
    const identity: Identity = { userId: row.user_id, name: row.name, region: row.region };
    return {
      token: signToken(identity, this.token, project),
      user: { user_id: row.user_id, name: row.name, region: row.region, score: (await this.deps.views.scoreOf(project, this.deps.catalog.main(project), ALL_TIME, identity)) ?? 0 },
    };
  }
}
