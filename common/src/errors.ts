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
  unknown_region: 400,
  region_mismatch: 400,
  score_out_of_range: 400,
  missing_token: 401,
  invalid_token: 401,
  invalid_credentials: 401,
  forbidden: 403,
  user_not_found: 404,
  not_found: 404,
  user_exists: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  idempotency_key_reuse: 422,
  rate_limited: 429,
  region_rate_limited: 429,
  queue_full: 429,
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

/** 400 `invalid_payload` naming the offending field. */
export function invalidField(field: string, message: string): AppError {
  return new AppError('invalid_payload', `${field}: ${message}`, { field });
}

/**
 * Maps anything thrown to an AppError. Body-parser errors (malformed JSON,
 * oversized body, wrong charset) carry `type`/`status` fields; they are client
 * errors and keep a 4xx status. Anything unknown becomes 500 `internal` with a
 * generic message: the caller logs the original.
 */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
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
