/**
 * The one error type of the platform and the registry of its codes.
 *
 * Core code throws `AppError`s; each service has one express error middleware
 * that writes `{"error": code, "message": ..., ...details}` with the status
 * registered for the code. Anything else becomes 500 `internal`.
 */

/** Every error code the API can answer with, and its HTTP status. */
export const ERROR_STATUS = {
  invalid_json: 400,
  invalid_payload: 400,
  invalid_query: 400,
  invalid_path: 400,
  unknown_region: 400,
  region_mismatch: 400,
  score_out_of_range: 400,
  missing_token: 401,
  invalid_token: 401,
  invalid_credentials: 401,
  invalid_api_key: 401,
  forbidden: 403,
  client_writes_disabled: 403,
  user_not_found: 404,
  board_not_found: 404,
  period_not_found: 404,
  tenant_not_found: 404,
  project_not_found: 404,
  key_not_found: 404,
  not_found: 404,
  method_not_allowed: 405,
  request_timeout: 408,
  user_exists: 409,
  board_exists: 409,
  immutable_field: 409,
  board_protected: 409,
  period_closed: 409,
  tenant_exists: 409,
  project_exists: 409,
  tenant_protected: 409,
  project_protected: 409,
  payload_too_large: 413,
  metadata_too_large: 413,
  uri_too_long: 414,
  unsupported_media_type: 415,
  idempotency_key_reuse: 422,
  rate_limited: 429,
  region_rate_limited: 429,
  project_rate_limited: 429,
  quota_exceeded: 429,
  queue_full: 429,
  too_many_connections: 429,
  too_many_streams: 429,
  headers_too_large: 431,
  internal: 500,
  bad_gateway: 502,
  unavailable: 503,
  gateway_timeout: 504,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

/** Extra JSON fields sent beside `error` and `message` (e.g. `field`, `retry_after`). */
export type ErrorDetails = Record<string, unknown>;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: ErrorDetails | undefined;

  constructor(code: ErrorCode, message: string, details?: ErrorDetails) {
    super(message);
    this.name = 'AppError';
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.details = details;
  }

  /** The JSON body every service answers errors with. */
  toJSON(): Record<string, unknown> {
    return { error: this.code, message: this.message, ...this.details };
  }
}

/**
 * A data store did not answer: a Redis shard or a Postgres database is down,
 * refused the connection, or let the call time out. Data layers throw it;
 * the HTTP layers answer 503 `unavailable` naming the store, with
 * `Retry-After` (see {@link toAppError}).
 */
export class StoreUnavailable extends Error {
  /**
   * @param store which kind of store
   * @param shard the shard whose store it is
   * @param inDoubt a write was sent and its answer lost (the connection
   *   dropped mid-call): it may or may not have been applied
   */
  constructor(
    readonly store: 'redis' | 'postgres',
    readonly shard: string,
    readonly inDoubt = false,
    options?: { cause?: unknown },
  ) {
    super(`${store === 'redis' ? 'shard' : 'the database of shard'} ${shard} is unavailable`, options);
    this.name = 'StoreUnavailable';
  }
}

/** Seconds a client is asked to wait (`Retry-After`) when a store is down: reconnection takes about this long. */
export const UNAVAILABLE_RETRY_AFTER_S = 1;

/** 400 `invalid_payload` naming the offending field. */
export function invalidField(field: string, message: string): AppError {
  return new AppError('invalid_payload', `${field}: ${message}`, { field });
}

/**
 * Maps anything thrown to an AppError. A store that does not answer is 503
 * `unavailable` with `retry_after`. Body-parser errors (malformed JSON,
 * oversized body, wrong charset) carry `type`/`status` fields; they are client
 * errors and keep a 4xx status. Anything unknown becomes 500 `internal` with a
 * generic message: the caller logs the original.
 */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof StoreUnavailable) {
    return new AppError(
      'unavailable',
      err.inDoubt ? `${err.message}; the write may or may not have been applied: retry it with the same Idempotency-Key` : err.message,
      { shard: err.shard, store: err.store, retry_after: UNAVAILABLE_RETRY_AFTER_S, ...(err.inDoubt && { in_doubt: true }) },
    );
  }
  const e = err as { type?: string; status?: number; expose?: boolean } | null;
  if (e && typeof e === 'object') {
    switch (e.type) {
      case 'entity.parse.failed':
        return new AppError('invalid_json', 'request body is not valid JSON');
      case 'entity.too.large':
        return new AppError('payload_too_large', 'request body is too large');
      case 'charset.unsupported':
      case 'encoding.unsupported':
        return new AppError('unsupported_media_type', 'unsupported body encoding');
      default:
        // Other client errors raised by express or the router (a path
        // parameter with broken %-encoding, for one) stay 4xx.
        if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
          return new AppError('invalid_payload', err instanceof URIError ? 'malformed URL encoding' : 'malformed request');
        }
    }
  }
  return new AppError('internal', 'internal error');
}
