/**
 * Wires the service's dependencies from its config. Start-up order is
 * connect Redis, check Postgres; `close` stops them in reverse.
 */
import { createLogger, ShardRouter, type Logger } from '@lb/common';
import { AccountService } from './accounts/accounts.js';
import type { ServiceConfig } from './config.js';
import { AccountsRepo } from './db/accounts-repo.js';
import { PgPools } from './db/pools.js';
import { BoardReader } from './leaderboard/reads.js';
import { ScoreWriter, type AfterWriteHook } from './leaderboard/writes.js';
import { ShardStores } from './redis/shard-store.js';

export interface Deps {
  log: Logger;
  router: ShardRouter;
  stores: ShardStores;
  pools: PgPools;
  reader: BoardReader;
  writer: ScoreWriter;
  accounts: AccountService;
  close(): Promise<void>;
}

export interface DepsOptions {
  log?: Logger;
  /** Test hook run after the Redis write, before the answer. */
  afterWrite?: AfterWriteHook;
}

export async function createDeps(config: ServiceConfig, opts: DepsOptions = {}): Promise<Deps> {
  const log = opts.log ?? createLogger(config.instanceId, config.logLevel);
  const router = new ShardRouter(config.topology);
  const stores = new ShardStores(router.shards, config.keyPrefix, config.redisCommandTimeoutMs, log);
  const pools = new PgPools(router.shards, config.pgPoolSize, log);
  await stores.connect(config.redisCommandTimeoutMs, log);
  const reader = new BoardReader(router, stores);
  const writer = new ScoreWriter(
    router,
    stores,
    reader,
    { maxScore: config.maxScore, idempotencyTtlS: config.idempotencyTtlS },
    opts.afterWrite,
  );
  const accounts = new AccountService(router, new AccountsRepo(pools), writer, config.token, {
    memoryCost: config.argon2MemoryKib,
    timeCost: config.argon2TimeCost,
  });
  return {
    log,
    router,
    stores,
    pools,
    reader,
    writer,
    accounts,
    async close() {
      await stores.close();
      await pools.close();
    },
  };
}
