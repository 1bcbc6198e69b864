/**
 * The platform's public API as the page uses it (docs/API.md), through the
 * same origin (nginx proxies everything but `/` and `/assets/`).
 */

/** A row of /top, /boards/:id/top, /around and of the live events. */
export interface Row {
  rank: number;
  user_id: string;
  name: string;
  score: number;
  metadata?: unknown;
}

export interface Period {
  id: string;
  starts_at: string;
  ends_at: string;
}

export interface Board {
  id: string;
  title: string;
  reset: string;
  order: 'asc' | 'desc';
  current_period?: Period | null;
}

/** `event: top` of /live and /boards/:id/live. */
export interface TopEvent {
  board: string;
  period: string;
  region: string;
  limit: number;
  rows: Row[];
  at: string;
}

/** `event: card` of /me/live. */
export interface CardEvent {
  board: string;
  period: string;
  user_id: string;
  name: string;
  region: string;
  /** null while the player is not on the board (no score in this period yet). */
  score: number | null;
  rank: { region: number | null; global: number | null };
  percentile: { region: number | null; global: number | null };
  around: Row[];
  at: string;
}

export interface HistoryEvent {
  version: number;
  score: number;
  ts: string;
}

/** GET /admin/stats: the service's own type of its answer (a type import: nothing of the service is bundled). */
export type { AdminStats } from '../../leaderboard-service/src/admin/stats.js';

/** An answer in the platform's error shape, `{"error": code, "message": text}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The whole error body: `field`, `retry_after`, ... (docs/API.md, "Error codes"). */
    readonly details: Readonly<Record<string, unknown>> = {},
    /** The answer's X-Request-Id, to quote when asking for help. */
    readonly requestId?: string,
  ) {
    super(message);
  }

  /** The input the server named as wrong (`field`), if any. */
  get field(): string | undefined {
    return typeof this.details.field === 'string' ? this.details.field : undefined;
  }
}

/** The {@link ApiError} of a non-2xx answer whose body is `text` (JSON in the error shape, or anything else). */
export function errorOf(res: Response, text: string): ApiError {
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  const b = (body !== null && typeof body === 'object' ? body : {}) as { error?: unknown; message?: unknown } & Record<string, unknown>;
  return new ApiError(
    res.status,
    typeof b.error === 'string' ? b.error : 'http_error',
    typeof b.message === 'string' ? b.message : `HTTP ${res.status}`,
    b,
    res.headers.get('x-request-id') ?? undefined,
  );
}

/** JSON request; rejects with {@link ApiError} on any non-2xx answer. */
export async function api<T>(path: string, init: { method?: string; body?: unknown; token?: string; apiKey?: string } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  if (init.apiKey) headers['x-api-key'] = init.apiKey;
  let res: Response;
  try {
    res = await fetch(path, {
      method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
      headers,
      ...(init.body !== undefined && { body: JSON.stringify(init.body) }),
    });
  } catch (e) {
    throw new ApiError(0, 'network', `the server could not be reached (${(e as Error).message})`);
  }
  const text = await res.text();
  if (!res.ok) throw errorOf(res, text);
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  return body as T;
}

/** `/top`-style path segment of a board: `main` is the original API's. */
export function boardPath(board: string, tail: string): string {
  return board === 'main' ? `/${tail}` : `/boards/${encodeURIComponent(board)}/${tail}`;
}

// ---------------------------------------------------------------- the tenant console's admin API (docs/API.md, "Tenants, projects and keys")

export interface Project {
  tenant?: string;
  id: string;
  name: string;
  created_at: string;
}

/** GET /admin/keys rows (the secret is never listed): the service's own type (type imports: nothing of the service is bundled). */
export type { ApiKeyInfo } from '../../leaderboard-service/src/db/api-keys-repo.js';
import type { ApiKeyInfo } from '../../leaderboard-service/src/db/api-keys-repo.js';
export type KeyKind = ApiKeyInfo['kind'];

/** POST /admin/keys: the key and, this once, its secret. */
export interface CreatedKey extends Omit<ApiKeyInfo, 'created_at' | 'revoked_at'> {
  key: string;
}

/** A board definition as GET /boards (public: no webhook_url) and the /admin/boards answers (with it) give it. */
export interface BoardDef extends Board {
  operator: 'best' | 'set' | 'incr';
  tie_break: 'shared' | 'earliest';
  min_score: number;
  max_score: number;
  max_metadata_bytes: number;
  client_writes: boolean;
  allow_operator_override: boolean;
  keep_periods: number;
  webhook_url?: string | null;
  /** POST /admin/boards only: the signing secret of the board's webhooks, shown once. */
  webhook_secret?: string;
  created_at: string;
  updated_at: string;
}

/** The fields PATCH /admin/boards/:id may change. */
export const MUTABLE_BOARD_FIELDS = ['title', 'min_score', 'max_score', 'max_metadata_bytes', 'client_writes', 'webhook_url', 'keep_periods'] as const;

/** The kinds of operation GET /admin/usage counts, as its rows name them. */
export const USAGE_KINDS = ['writes', 'reads', 'streams', 'events', 'admin'] as const;
export type UsageKind = (typeof USAGE_KINDS)[number];

/** GET /admin/usage: rows only where something was counted. */
export interface Usage {
  tenant: string;
  from: string;
  to: string;
  granularity: 'day' | 'hour';
  rows: Array<{ project: string; period_start: string } & Record<UsageKind, number>>;
}

/** GET /admin/quota: `limit` and `remaining` null = no quota. */
export interface Quota {
  tenant: string;
  plan: string;
  month: string;
  limit: number | null;
  used: number;
  remaining: number | null;
  resets_at: string;
}

export interface AuditEntry {
  id: string;
  at: string;
  tenant: string;
  project: string | null;
  key: { id: string; name: string } | null;
  action: string;
  target: string;
  change: { before?: unknown; after?: unknown } | null;
  request_id: string | null;
}

/** GET /admin/audit?limit&before&action: newest first; `next_before` pages on (null: no older entries). */
export interface AuditPage {
  tenant: string;
  entries: AuditEntry[];
  next_before: string | null;
}
