/**
 * Access tokens: HS256 JWTs with the algorithm pinned on verify, `exp` and
 * `iss` checked. Used by the leaderboard-service (issue and verify) and the
 * api-gateway (verify before proxying).
 */
import { createSecretKey, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { AppError } from '../contracts/errors.js';
import { DEFAULT_PROJECT, parseProjectScope, projectScope, type ProjectRef } from '../contracts/tenancy.js';
import { USER_ID_PATTERN } from '../contracts/validate.js';

export interface TokenSettings {
  readonly secret: string;
  readonly issuer: string;
  readonly ttlSeconds: number;
  /** JWT_CLOCK_SKEW_S: how far in the future `iat` may lie (default {@link DEFAULT_CLOCK_SKEW_S}); `exp` is exact. */
  readonly clockSkewS?: number;
}

export const DEFAULT_CLOCK_SKEW_S = 30;

/** The token settings of a service's config (the JWT_* keys of settings.ts). */
export function tokenSettingsOf(c: { jwtSecret: string; jwtIssuer: string; jwtTtlS: number; jwtClockSkewS: number }): TokenSettings {
  return Object.freeze({ secret: c.jwtSecret, issuer: c.jwtIssuer, ttlSeconds: c.jwtTtlS, clockSkewS: c.jwtClockSkewS });
}

/** A player: who they are and where their home is. */
export interface Identity {
  readonly userId: string;
  readonly name: string;
  readonly region: string;
}

/**
 * The identity a verified token carries: the player and their project (the
 * `prj` claim, `<tenant>/<project>`; a token without it, issued before
 * tenancy, is the default project's).
 */
export interface TokenIdentity extends Identity {
  readonly project: ProjectRef;
}

/** The project of a token's `prj` claim; undefined when the claim is malformed. */
function projectClaim(prj: unknown): ProjectRef | undefined {
  if (prj === undefined) return DEFAULT_PROJECT;
  return typeof prj === 'string' ? parseProjectScope(prj) : undefined;
}

const ALGORITHM = 'HS256';

/**
 * jsonwebtoken turns a string secret into a key on every call, first trying
 * it as a PEM public key and catching the failure: that alone was a fifth of
 * a write's CPU. A KeyObject made once skips both.
 */
const keys = new Map<string, KeyObject>();
function keyOf(secret: string): KeyObject {
  let k = keys.get(secret);
  if (!k) {
    k = createSecretKey(Buffer.from(secret, 'utf8'));
    keys.set(secret, k);
  }
  return k;
}

/** Signs a token for a player of a project: `sub`, `name`, `region`, `prj`, `iat`, `exp`, `iss`. */
export function signToken(identity: Identity, s: TokenSettings, project: ProjectRef = DEFAULT_PROJECT): string {
  return jwt.sign({ name: identity.name, region: identity.region, prj: projectScope(project) }, keyOf(s.secret), {
    algorithm: ALGORITHM,
    subject: identity.userId,
    issuer: s.issuer,
    expiresIn: s.ttlSeconds,
  });
}

/**
 * Reads `Authorization: Bearer <token>` and verifies it. A missing header is
 * 401 `missing_token`; anything wrong with the token (signature, `alg`,
 * expiry, issuer, claims) is 401 `invalid_token`.
 */
export function verifyBearer(header: string | undefined, s: TokenSettings): TokenIdentity {
  if (header === undefined || header === '') throw new AppError('missing_token', 'Authorization: Bearer token required');
  const m = /^Bearer[ ]+([A-Za-z0-9_\-.=]+)\s*$/i.exec(header);
  if (!m) throw new AppError('invalid_token', 'Authorization header must be "Bearer <token>"');
  return verifyToken(m[1]!, s);
}

/** Most verified tokens a process remembers per token settings. */
export const VERIFIED_TOKEN_CACHE_SIZE = 10_000;

interface Verified {
  readonly identity: TokenIdentity;
  /** The token's `exp`, epoch seconds. */
  readonly exp: number;
}

/**
 * Tokens already verified, per token settings (a secret or issuer of other
 * settings never finds them), keyed by the whole token, until their `exp`.
 * Players send the same token with every request, and each gateway and
 * replica verified it again each time (HMAC, base64 and JSON twice per
 * request: ~5% of a gateway's CPU per write). A verified token stays valid
 * until `exp`: its signature and claims cannot change and `iat` only moves
 * further into the past. Only successes are remembered, so a token that
 * fails is checked in full every time; at {@link VERIFIED_TOKEN_CACHE_SIZE}
 * entries the oldest one is forgotten (insertion order), so memory is
 * bounded (about 3 MB) whatever clients send.
 */
const verified = new WeakMap<TokenSettings, Map<string, Verified>>();

/** How many verified tokens these settings remember now (bounded by {@link VERIFIED_TOKEN_CACHE_SIZE}). */
export function verifiedTokenCount(s: TokenSettings): number {
  return verified.get(s)?.size ?? 0;
}

function rememberVerified(s: TokenSettings, token: string, v: Verified): void {
  let cache = verified.get(s);
  if (!cache) {
    cache = new Map();
    verified.set(s, cache);
  }
  if (cache.size >= VERIFIED_TOKEN_CACHE_SIZE) cache.delete(cache.keys().next().value!);
  cache.set(token, v);
}

/**
 * Verifies a raw token; see `verifyBearer`. `iat` is required and may lie
 * at most the clock skew in the future: jsonwebtoken checks `exp` and `nbf`
 * but accepts any `iat`, and a token "issued tomorrow" is forged or comes
 * from a broken clock either way. A token verified before (by these
 * settings) is answered from the cache while `Date.now()` is before its
 * `exp`, exactly the instant jsonwebtoken starts refusing it.
 */
export function verifyToken(token: string, s: TokenSettings): TokenIdentity {
  const known = verified.get(s)?.get(token);
  if (known) {
    if (Date.now() / 1000 < known.exp) return known.identity;
    verified.get(s)!.delete(token);
  }
  const skew = s.clockSkewS ?? DEFAULT_CLOCK_SKEW_S;
  let claims: jwt.JwtPayload | string;
  try {
    claims = jwt.verify(token, keyOf(s.secret), { algorithms: [ALGORITHM], issuer: s.issuer });
  } catch (e) {
    const expired = (e as Error).name === 'TokenExpiredError';
    throw new AppError('invalid_token', expired ? 'token expired' : 'token is invalid');
  }
  if (typeof claims !== 'object' || claims.exp === undefined) {
    throw new AppError('invalid_token', 'token must carry exp');
  }
  // Tokens for one purpose only (a live ticket) carry an audience: never an access token.
  if (claims.aud !== undefined) throw new AppError('invalid_token', 'token is not an access token');
  if (typeof claims.iat !== 'number' || claims.iat > Date.now() / 1000 + skew) {
    throw new AppError('invalid_token', typeof claims.iat !== 'number' ? 'token must carry iat' : 'token is issued in the future');
  }
  const { sub, name, region, prj } = claims as Record<string, unknown>;
  const project = projectClaim(prj);
  if (typeof sub !== 'string' || !USER_ID_PATTERN.test(sub) || typeof name !== 'string' || typeof region !== 'string' || !project) {
    throw new AppError('invalid_token', 'token claims are malformed');
  }
  const identity = Object.freeze({ userId: sub, name, region, project });
  rememberVerified(s, token, { identity, exp: claims.exp });
  return identity;
}

/** The audience of live tickets: a ticket opens `GET /me/live` and nothing else. */
export const LIVE_TICKET_AUDIENCE = 'lb:live';
/** How long a live ticket is valid, seconds. */
export const LIVE_TICKET_TTL_S = 30;

/**
 * A short-lived ticket for `GET /me/live?ticket=` (EventSource cannot send
 * an Authorization header): a JWT with the same secret and pinned algorithm
 * as access tokens, its own audience, valid {@link LIVE_TICKET_TTL_S}. An
 * access token is never accepted as a ticket, nor a ticket as a token.
 */
export function signLiveTicket(identity: TokenIdentity, s: TokenSettings): string {
  return jwt.sign({ name: identity.name, region: identity.region, prj: projectScope(identity.project) }, keyOf(s.secret), {
    algorithm: ALGORITHM,
    subject: identity.userId,
    issuer: s.issuer,
    audience: LIVE_TICKET_AUDIENCE,
    expiresIn: LIVE_TICKET_TTL_S,
  });
}

/** Verifies a live ticket; anything wrong with it (audience included) is 401 `invalid_token`. */
export function verifyLiveTicket(ticket: string, s: TokenSettings): TokenIdentity {
  let claims: jwt.JwtPayload | string;
  try {
    claims = jwt.verify(ticket, keyOf(s.secret), { algorithms: [ALGORITHM], issuer: s.issuer, audience: LIVE_TICKET_AUDIENCE });
  } catch (e) {
    throw new AppError('invalid_token', (e as Error).name === 'TokenExpiredError' ? 'ticket expired' : 'ticket is invalid');
  }
  const { sub, name, region, exp, prj } = (typeof claims === 'object' ? claims : {}) as Record<string, unknown>;
  const project = projectClaim(prj);
  if (typeof exp !== 'number' || typeof sub !== 'string' || !USER_ID_PATTERN.test(sub) || typeof name !== 'string' || typeof region !== 'string' || !project) {
    throw new AppError('invalid_token', 'ticket claims are malformed');
  }
  return { userId: sub, name, region, project };
}
