/**
 * leaderboard-service configuration: one typed, frozen object built from the
 * environment; any bad value stops start-up with the key's name.
 */
import { type Topology } from '@lb/common/contracts';
import {
  ConfigError,
  JOB_ATTEMPTS,
  JOB_BACKOFF_MS,
  PG_POOL_SIZE,
  PG_SERVICE_PASSWORD,
  boolKey,
  enumKey,
  intKey,
  urlKey,
  JWT_ISSUER,
  JWT_SECRET,
  JWT_TTL_S,
  JWT_CLOCK_SKEW_S,
  HEADERS_TIMEOUT_MS,
  BODY_TIMEOUT_MS,
  tokenSettingsOf,
  KEY_PREFIX,
  LOG_LEVEL,
  loadTopology,
  MAX_SCORE,
  MAX_SCORE_DELTA,
  readKeys,
  stringKey,
  type Env,
  type TokenSettings,
  TOPOLOGY_FILE_KEY,
  TOPOLOGY_KEY,
  TRUSTED_PROXIES,
  type ConfigKey,
  metricsPortKey,
  METRICS_HOST,
  tracingKeys,
} from '@lb/common/platform';
import type { LoginLimits } from './accounts/login-guard.js';

/** Login throttling (accounts/login-guard.ts); the admin command's `login` subcommands read them too. */
export const LOGIN_KEYS = {
  loginUserMaxFails: intKey('LOGIN_USER_MAX_FAILS', 'Consecutive failed logins of one user id within LOGIN_FAIL_WINDOW_S before further attempts get 429 rate_limited (a success resets it; `npm run admin -- login unlock --user ID` lifts it).', { default: 5, min: 1, max: 1000 }),
  loginIpMaxFails: intKey('LOGIN_IP_MAX_FAILS', 'Failed logins from one client IP within LOGIN_FAIL_WINDOW_S before every login from it, correct passwords of any player included, gets 429 rate_limited; players behind one NAT share it (docs/OPERATIONS.md). `npm run admin -- login unlock --ip ADDR` lifts it.', { default: 100, min: 1, max: 1_000_000 }),
  loginFailWindowS: intKey('LOGIN_FAIL_WINDOW_S', 'Window of the login failure counters, seconds, from the first failure.', { default: 900, min: 1, max: 7 * 24 * 3600 }),
} as const;

/** The LoginGuard limits of a configuration that has {@link LOGIN_KEYS}. */
export function loginLimitsOf(c: { loginUserMaxFails: number; loginIpMaxFails: number; loginFailWindowS: number }): LoginLimits {
  return { userMaxFails: c.loginUserMaxFails, ipMaxFails: c.loginIpMaxFails, windowS: c.loginFailWindowS };
}

const SPEC = {
  metricsPort: metricsPortKey(9101),
  metricsHost: METRICS_HOST,
  ...tracingKeys('leaderboard-service'),
  port: intKey('PORT', 'HTTP port of the leaderboard-service (0 = any free port).', { default: 5001, min: 0, max: 65535 }),
  host: stringKey('HOST', 'Address to listen on; keep it on loopback or a private network.', { default: '127.0.0.1' }),
  instanceId: stringKey('INSTANCE_ID', 'Name of this replica in logs and the X-Served-By header.', { default: 'leaderboard-1' }),
  jwtSecret: JWT_SECRET,
  jwtIssuer: JWT_ISSUER,
  jwtTtlS: JWT_TTL_S,
  jwtClockSkewS: JWT_CLOCK_SKEW_S,
  headersTimeoutMs: HEADERS_TIMEOUT_MS,
  bodyTimeoutMs: BODY_TIMEOUT_MS,
  maxScore: MAX_SCORE,
  maxScoreDelta: MAX_SCORE_DELTA,
  keyPrefix: KEY_PREFIX,
  logLevel: LOG_LEVEL,
  accessLog: boolKey('ACCESS_LOG', 'Write one morgan access-log line per request to stdout.', true),
  bodyLimitBytes: intKey('BODY_LIMIT_BYTES', 'Largest accepted JSON body, in bytes.', { default: 16 * 1024, min: 256, max: 1024 * 1024 }),
  idempotencyTtlS: intKey('IDEMPOTENCY_TTL_S', 'How long an Idempotency-Key answer is kept, seconds.', { default: 24 * 3600, min: 60 }),
  argon2MemoryKib: intKey('ARGON2_MEMORY_KIB', 'argon2id memory cost in KiB for password hashes.', { default: 19456, min: 64, max: 1 << 21 }),
  hashConcurrency: intKey('HASH_CONCURRENCY', 'Password hashes (login, registration) computed at once per replica; more wait. Each is ~13 ms of one core (argon2id defaults).', { default: 1, min: 1, max: 64 }),
  hashQueueMax: intKey('HASH_QUEUE_MAX', 'Password checks that may wait for a hashing slot per replica; beyond this they get 503 unavailable at once.', { default: 64, min: 0, max: 100_000 }),
  ...LOGIN_KEYS,
  trustedProxies: TRUSTED_PROXIES,
  argon2TimeCost: intKey('ARGON2_TIME_COST', 'argon2id iterations for password hashes.', { default: 2, min: 1, max: 20 }),
  redisCommandTimeoutMs: intKey('REDIS_COMMAND_TIMEOUT_MS', 'A Redis command not answered in this time fails with 503.', { default: 2000, min: 50 }),
  pgPoolSize: PG_POOL_SIZE,
  pgServicePassword: PG_SERVICE_PASSWORD,
  pgQueryTimeoutMs: intKey('PG_QUERY_TIMEOUT_MS', 'A Postgres query (accounts, history) not answered in this time fails with 503 unavailable, ms.', { default: 5000, min: 100, max: 600_000 }),
  userRateLimitCount: intKey('USER_RATE_LIMIT_COUNT', 'Token bucket per player: writes allowed per window (bucket size).', { default: 20, min: 1 }),
  userRateLimitWindowMs: intKey('USER_RATE_LIMIT_WINDOW_MS', 'Token bucket per player: time to refill the whole bucket, ms.', { default: 1000, min: 1000 }),
  regionRateLimitCount: intKey('REGION_RATE_LIMIT_COUNT', 'Token bucket per region: writes allowed per window.', { default: 50_000, min: 1 }),
  regionRateLimitWindowMs: intKey('REGION_RATE_LIMIT_WINDOW_MS', 'Token bucket per region: refill time of the whole bucket, ms.', { default: 1000, min: 1000 }),
  queueRejectLength: intKey('QUEUE_REJECT_LENGTH', 'Refuse writes (429 queue_full) while a shard\'s backlog (events written and not yet persisted to Postgres) reaches this many events; 0 = never.', { default: 100_000, min: 0 }),
  jobAttempts: JOB_ATTEMPTS,
  jobBackoffMs: JOB_BACKOFF_MS,
  topCacheMaxAgeMs: intKey('TOP_CACHE_MAX_AGE_MS', 'Top pages (the first 100 rows of each board) are served from memory, dropped by every write that changes them; this bounds how long a copy is kept at all, ms (0 = no cache).', { default: 1000, min: 0, max: 3_600_000 }),
  boardRefreshMs: intKey('BOARD_REFRESH_MS', 'How often each replica checks the control plane for changed board definitions, ms (a change made through a replica is seen there at once).', { default: 500, min: 50, max: 60_000 }),
  usageFlushMs: intKey('USAGE_FLUSH_MS', 'How often a replica flushes the reads, streams, events and admin requests it counted (usage metering) to Redis, ms; a replica that crashes loses at most this long of its counts, and a tenant past its quota can overshoot with reads by about this long of traffic.', { default: 1000, min: 50, max: 60_000 }),
  usageLiveTtlS: intKey('USAGE_LIVE_TTL_S', 'How long an hour\'s usage counters stay in Redis, seconds (the worker rolls them up into Postgres every USAGE_ROLLUP_EVERY_MS; the usage answers read both).', { default: 3 * 86_400, min: 3600 }),
  apiKeyCacheMs: intKey('API_KEY_CACHE_MS', 'How long a replica trusts an API key (and a tenant\'s list of projects) it has checked, ms: a revoked key, a deleted project or a changed plan takes effect within this time.', { default: 900, min: 0, max: 600_000 }),
  relayEnvelopeMax: intKey('RELAY_ENVELOPE_MAX', 'Most events in one queue job (an envelope); after a full one the shard\'s relay takes the next at once, without waiting for RELAY_LINGER_MS.', { default: 500, min: 1, max: 1000 }),
  relayLingerMs: intKey('RELAY_LINGER_MS', 'How often the shard\'s relay takes the events written since its last turn and enqueues them as one job, ms: the longest an event waits to share its job (persistence lag grows by up to this much; the client\'s answer never waits for it).', { default: 500, min: 10, max: 60_000 }),
  relayLeaseMs: intKey('RELAY_LEASE_MS', 'One replica at a time relays each shard, holding a lease it renews on every turn; when that replica dies another takes the shard over within this time, ms. Must exceed RELAY_LINGER_MS.', { default: 5000, min: 100, max: 600_000 }),
  livePublishUrl: urlKey('LIVE_PUBLISH_URL', 'Live pushes: nginx\'s internal live server (nchan\'s publisher location /pub/, never the public listener), where this replica publishes the channels it computes.', 'http://127.0.0.1:8091'),
  liveRefreshMs: intKey('LIVE_REFRESH_MS', 'Live pushes: the replicas\' heartbeat (a replica silent for 3 of these hands its channels on), and how often players\' cards (and tops whose change channel is down) are recomputed, ms.', { default: 1000, min: 200, max: 600_000 }),
  testFault: enumKey('TEST_FAULT', 'Tests only: crash-after-redis-write kills the process between a Redis write and its enqueue.', ['off', 'crash-after-redis-write'], 'off'),
} as const;

/** Every key this service reads (for .env.example), topology keys included. */
export const CONFIG_KEYS: readonly ConfigKey<unknown>[] = [...Object.values(SPEC), TOPOLOGY_KEY, TOPOLOGY_FILE_KEY];

export type ServiceConfig = ReturnType<typeof readKeys<typeof SPEC>> & {
  readonly topology: Topology;
  readonly token: TokenSettings;
};

/** Loads and validates the configuration; throws ConfigError naming the key. */
export function loadConfig(env: Env = process.env): ServiceConfig {
  const base = readKeys(SPEC, env);
  if (base.relayLeaseMs <= base.relayLingerMs) throw new ConfigError('RELAY_LEASE_MS', `must exceed RELAY_LINGER_MS (${base.relayLingerMs}), or the lease would lapse between a relay's turns`);
  return Object.freeze({
    ...base,
    topology: loadTopology(env),
    token: tokenSettingsOf(base),
  });
}
