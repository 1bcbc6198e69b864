/**
 * api-gateway configuration: one typed, frozen object built from the
 * environment; any bad value stops start-up with the key's name.
 */
import {
  boolKey,
  ConfigError,
  intKey,
  JWT_ISSUER,
  JWT_SECRET,
  JWT_TTL_S,
  JWT_CLOCK_SKEW_S,
  TRUSTED_PROXIES,
  HEADERS_TIMEOUT_MS,
  BODY_TIMEOUT_MS,
  tokenSettingsOf,
  LOG_LEVEL,
  readKeys,
  stringKey,
  urlListKey,
  type Env,
  type TokenSettings,
  type ConfigKey,
  metricsPortKey,
  METRICS_HOST,
  tracingKeys,
} from '@lb/common/platform';

const SPEC = {
  metricsPort: metricsPortKey(9102),
  metricsHost: METRICS_HOST,
  ...tracingKeys('api-gateway'),
  port: intKey('PORT', 'HTTP port of the api-gateway (0 = any free port).', { default: 4000, min: 0, max: 65535 }),
  host: stringKey('HOST', 'Address to listen on; nginx in front of it is the public side.', { default: '127.0.0.1' }),
  gatewayId: stringKey('GATEWAY_ID', 'Name of this gateway in logs and GET /health.', {
    default: 'gateway-1',
    pattern: /^[A-Za-z0-9_.:-]{1,64}$/,
  }),
  upstreamUrls: urlListKey(
    'LEADERBOARD_SERVICE_URLS',
    'Comma-separated base URLs of the leaderboard-service replicas, used round-robin.',
    'http://127.0.0.1:5001,http://127.0.0.1:5002,http://127.0.0.1:5003',
  ),
  upstreamTimeoutMs: intKey(
    'UPSTREAM_TIMEOUT_MS',
    'A replica that has not answered (response headers) within this time is taken out of rotation; 504 if the request cannot be retried.',
    { default: 5000, min: 10, max: 10 * 60_000 },
  ),
  upstreamCooloffMs: intKey('UPSTREAM_COOLOFF_MS', 'How long a failed replica stays out of rotation before health probes may re-admit it.', {
    default: 5000,
    min: 0,
    max: 10 * 60_000,
  }),
  probeIntervalMs: intKey('PROBE_INTERVAL_MS', 'How often a replica out of rotation has its GET /health probed.', {
    default: 1000,
    min: 10,
    max: 10 * 60_000,
  }),
  upstreamMaxSockets: intKey('UPSTREAM_MAX_SOCKETS', 'Most keep-alive connections the gateway opens to one replica.', {
    default: 128,
    min: 1,
    max: 4096,
  }),
  readRateLimitCount: intKey('READ_RATE_LIMIT_COUNT', 'GET requests one client IP may make per window, per gateway process (in memory).', {
    default: 6000,
    min: 1,
  }),
  readRateLimitWindowMs: intKey('READ_RATE_LIMIT_WINDOW_MS', 'Length of the read rate-limit window, in ms.', {
    default: 1000,
    min: 1,
    max: 24 * 3600_000,
  }),
  bodyLimitBytes: intKey('BODY_LIMIT_BYTES', 'Largest request body the gateway buffers and forwards, in bytes (413 above).', {
    default: 16 * 1024,
    min: 256,
    max: 1024 * 1024,
  }),
  trustedProxies: TRUSTED_PROXIES,
  accessLog: boolKey('ACCESS_LOG', 'Write one morgan access-log line per request to stdout.', true),
  logLevel: LOG_LEVEL,
  jwtSecret: JWT_SECRET,
  jwtIssuer: JWT_ISSUER,
  jwtTtlS: JWT_TTL_S,
  jwtClockSkewS: JWT_CLOCK_SKEW_S,
  headersTimeoutMs: HEADERS_TIMEOUT_MS,
  bodyTimeoutMs: BODY_TIMEOUT_MS,
} as const;

/** Every key this service reads (for .env.example). */
export const CONFIG_KEYS: readonly ConfigKey<unknown>[] = Object.values(SPEC);

export type GatewayConfig = ReturnType<typeof readKeys<typeof SPEC>> & {
  /** Token checks of score-writing routes; the same settings the services verify with. */
  readonly token: TokenSettings;
};

/** Loads and validates the configuration; throws ConfigError naming the key. */
export function loadConfig(env: Env = process.env): GatewayConfig {
  const base = readKeys(SPEC, env);
  if (new Set(base.upstreamUrls).size !== base.upstreamUrls.length) {
    throw new ConfigError('LEADERBOARD_SERVICE_URLS', 'lists the same URL twice');
  }
  return Object.freeze({
    ...base,
    token: tokenSettingsOf(base),
  });
}
