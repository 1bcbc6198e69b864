/**
 * Player accounts: registration and login. Passwords are hashed with
 * argon2id; tokens are HS256 JWTs (see @lb/common jwt).
 */
import { hash, verify } from '@node-rs/argon2';
import { AppError, signToken, type Identity, type ShardRouter, type TokenSettings } from '@lb/common';
import type { AccountsRepo } from '../db/accounts-repo.js';
import type { ScoreWriter, WriteAnswer } from '../leaderboard/writes.js';

export interface Registration {
  userId: string;
  name: string;
  region: string;
  password: string;
  initialScore?: number | undefined;
  requestId: string;
}

export interface AccountAnswer {
  token: string;
  user: { user_id: string; name: string; region: string; score: number };
}

export interface HashSettings {
  memoryCost: number;
  timeCost: number;
}

export class AccountService {
  /** Verified against when the user is unknown, so both failures take the same time. */
  private dummyHash: Promise<string>;

  constructor(
    private readonly router: ShardRouter,
    private readonly repo: AccountsRepo,
    private readonly writer: ScoreWriter,
    private readonly token: TokenSettings,
    private readonly hashing: HashSettings,
  ) {
    this.dummyHash = hash('not-a-real-password', this.hashOptions());
  }

  private hashOptions() {
    return { memoryCost: this.hashing.memoryCost, timeCost: this.hashing.timeCost, parallelism: 1 };
  }

  /**
   * Registers a player: the account is committed to the home shard's Postgres
   * before the answer, then the board entry is created when an initial score
   * is given.
   */
  async register(r: Registration): Promise<AccountAnswer> {
    const home = this.router.homeShard(r.userId, r.region);
    const passwordHash = await hash(r.password, this.hashOptions());
    const created = await this.repo.create({
      userId: r.userId,
      name: r.name,
      region: r.region,
      passwordHash,
      homeShard: home.id,
      directoryShard: this.router.hashShard(r.userId).id,
    });
    if (!created) throw new AppError('user_exists', `user ${r.userId} already exists`);
    const identity: Identity = { userId: r.userId, name: r.name, region: r.region };
    let score = 0;
    if (r.initialScore !== undefined) {
      const w: WriteAnswer = await this.writer.write({
        player: identity,
        op: 'register',
        value: r.initialScore,
        requestId: r.requestId,
      });
      score = w.score;
    }
    return { token: signToken(identity, this.token), user: { user_id: r.userId, name: r.name, region: r.region, score } };
  }

  /** Logs a player in; unknown user and wrong password answer alike. */
  async login(userId: string, password: string): Promise<AccountAnswer> {
    const row = await this.repo.findAnywhere(userId);
    const ok = await verify(row?.password_hash ?? (await this.dummyHash), password).catch(() => false);
    if (!row || !ok) throw new AppError('invalid_credentials', 'wrong user id or password');
    const identity: Identity = { userId: row.user_id, name: row.name, region: row.region };
    return {
      token: signToken(identity, this.token),
      user: { user_id: row.user_id, name: row.name, region: row.region, score: await this.writer.currentScore(identity) },
    };
  }
}
