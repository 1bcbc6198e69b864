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
  ) {
    super(message);
  }
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
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const b = (body ?? {}) as { error?: string; message?: string };
    throw new ApiError(res.status, b.error ?? 'http_error', b.message ?? `HTTP ${res.status}`);
  }
  return body as T;
}

/** `/top`-style path segment of a board: `main` is the original API's. */
export function boardPath(board: string, tail: string): string {
  return board === 'main' ? `/${tail}` : `/boards/${encodeURIComponent(board)}/${tail}`;
}
