/**
 * Configuration keys shared by several services (token checks, score bounds,
 * key prefix). Each service's own config module reads them with the rest.
 */
import { intKey, optionalKey, stringKey } from './config.js';

export const JWT_SECRET = stringKey('JWT_SECRET', 'HS256 signing secret shared by gateways and services (>= 32 characters).', {
  minLength: 32,
});
export const JWT_ISSUER = stringKey('JWT_ISSUER', 'Issuer (`iss`) written into and required on every token.', {
  default: 'leaderboard-platform',
});
export const JWT_TTL_S = intKey('JWT_TTL_S', 'Token lifetime in seconds (`exp` = `iat` + this).', {
  default: 3600,
  min: 1,
  max: 30 * 24 * 3600,
});
export const JWT_CLOCK_SKEW_S = intKey(
  'JWT_CLOCK_SKEW_S',
  'Clock difference tolerated between token issuer and verifier, seconds: a token issued (`iat`) further in the future is refused.',
  { default: 30, min: 0, max: 600 },
);
export const MAX_SCORE = intKey('MAX_SCORE', 'Highest score a player may have (scores are integers in [0, MAX_SCORE]).', {
  default: Number.MAX_SAFE_INTEGER,
  min: 1,
  max: Number.MAX_SAFE_INTEGER,
});
export const MAX_SCORE_DELTA = intKey('MAX_SCORE_DELTA', 'Largest |delta| of one /score/add, and the largest initialScore.', {
  default: 1_000_000_000,
  min: 1,
  max: Number.MAX_SAFE_INTEGER,
});
export const KEY_PREFIX = stringKey('KEY_PREFIX', 'Prefix of every Redis key and queue name (tests use their own).', {
  default: 'lb',
  pattern: /^[a-z][a-z0-9_-]{0,15}$/,
});
export const JOB_ATTEMPTS = intKey('JOB_ATTEMPTS', 'Attempts of a score-event job before it stays in the failed set (the dead-letter queue). Set by the producer on each job.', {
  default: 10,
  min: 1,
  max: 100,
});
export const JOB_BACKOFF_MS = intKey('JOB_BACKOFF_MS', 'First retry delay of a failed score-event job, ms; doubles on each attempt.', { default: 500, min: 10 });
export const PG_SERVICE_PASSWORD = optionalKey(
  'PG_SERVICE_PASSWORD',
  'Password of the Postgres role lb_app the services connect as (sql/008; the topology URLs name the owner, which runs migrations): the migrator sets it on the role, the services and tools log in with it. Unset: no password (trust authentication, as `npm start` and the tests use).',
);
export const PG_POOL_SIZE = intKey('PG_POOL_SIZE', 'Connections per Postgres pool (one pool per distinct database URL).', { default: 10, min: 1, max: 100 });

/**
 * Which peers' X-Forwarded-For is believed, in express' `trust proxy`
 * syntax: the names loopback, linklocal, uniquelocal, or addresses and
 * CIDR ranges, comma-separated. The client address is the last hop of the
 * chain that is not trusted. nginx replaces the header with the address it
 * saw, so a client cannot add hops of its own.
 */
export const TRUSTED_PROXIES = stringKey(
  'TRUSTED_PROXIES',
  'Peers whose X-Forwarded-For is believed (express trust proxy syntax: loopback, linklocal, uniquelocal, addresses, CIDR ranges; comma-separated).',
  { default: 'loopback, uniquelocal', pattern: /^\s*(?:loopback|linklocal|uniquelocal|[0-9A-Fa-f:.]+(?:\/\d{1,3})?)(?:\s*,\s*(?:loopback|linklocal|uniquelocal|[0-9A-Fa-f:.]+(?:\/\d{1,3})?))*\s*$/ },
);

export const HEADERS_TIMEOUT_MS = intKey(
  'HEADERS_TIMEOUT_MS',
  'A request whose line and headers have not all arrived this long after its first byte gets 408 request_timeout and is closed, ms.',
  { default: 10_000, min: 100, max: 600_000 },
);
export const BODY_TIMEOUT_MS = intKey(
  'BODY_TIMEOUT_MS',
  'A request body that has not all arrived this long after the headers (stalled or trickled) gets 408 request_timeout and is closed, ms.',
  { default: 10_000, min: 100, max: 600_000 },
);
