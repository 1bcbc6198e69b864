/**
 * The hot path: board reads and score writes, served on plain node:http
 * from one route table.
 *
 * Profiling showed express' per-request machinery (router, prototype swaps,
 * body-parser) costing as much CPU as the leaderboard work itself on these
 * routes. They are few, fixed, and take tiny inputs, so a table lookup and a
 * bounded body read replace it; everything else (accounts, history, health,
 * 404) stays on the express app. Both use the same pieces of @lb/common's
 * http.ts: request id, JSON body reader, error writer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AppError, readJsonBody, requestIdOf, sendJson, verifyBearer, writeError, type BodyLimits, type Identity, type Logger, type TokenSettings } from '@lb/common';

/** What a hot handler sees of a request. */
export interface HotRequest {
  readonly query: URLSearchParams;
  /** The decoded path parameter (`:userId`), when the route has one. */
  readonly param: string | undefined;
  readonly headers: IncomingMessage['headers'];
  readonly requestId: string;
  /** The verified player (routes with `auth: 'token'` only). */
  readonly player: Identity | undefined;
  /** The parsed JSON body (POST routes; `{}` when there is none). */
  readonly body: unknown;
}

export type HotHandler = (r: HotRequest) => Promise<unknown>;

/** An answer a handler already has as JSON text (sent as is). */
export class JsonText {
  constructor(readonly text: string) {}
}

/** One route of the table. */
export interface Route {
  /** GET routes also answer HEAD (the same headers, no body). */
  readonly method: 'GET' | 'POST';
  /** An exact path (`/top`) or one with a single trailing parameter (`/rank/:userId`). */
  readonly path: string;
  /** `token`: a valid Bearer token is required, checked before the body is read. */
  readonly auth: 'none' | 'token';
  readonly handler: HotHandler;
}

export interface HotPathOptions {
  instanceId: string;
  token: TokenSettings;
  body: BodyLimits;
  log: Logger;
  /** morgan (or any connect-style logger) run on every request served here. */
  accessLog?: ((req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void) | undefined;
}

/** The table compiled for lookups: exact paths and parameter prefixes, per method. */
interface Compiled {
  exact: Map<string, Route>;
  /** By the prefix before the parameter, ending in '/'. */
  prefixed: Map<string, Route>;
}

function compile(routes: readonly Route[]): Record<Route['method'], Compiled> {
  const out = { GET: { exact: new Map(), prefixed: new Map() }, POST: { exact: new Map(), prefixed: new Map() } } as Record<Route['method'], Compiled>;
  for (const r of routes) {
    const param = /^(.*\/):[A-Za-z]+$/.exec(r.path);
    const into = param ? out[r.method].prefixed : out[r.method].exact;
    const key = param ? param[1]! : r.path;
    if (into.has(key)) throw new Error(`route ${r.method} ${r.path} is declared twice`);
    into.set(key, r);
  }
  return out;
}

/**
 * Returns a request listener that serves the routes of the table and
 * returns false for any other request (the caller hands it to express).
 */
export function hotPath(routes: readonly Route[], o: HotPathOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const table = compile(routes);
  return (req, res) => {
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    if (method !== 'GET' && method !== 'POST') return false;
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const t = table[method];
    let route = t.exact.get(path);
    let param: string | undefined;
    if (!route) {
      const slash = path.lastIndexOf('/');
      route = slash < path.length - 1 ? t.prefixed.get(path.slice(0, slash + 1)) : undefined;
      if (route) param = path.slice(slash + 1);
    }
    if (!route) return false;
    void serve(req, res, route, new URLSearchParams(q < 0 ? '' : url.slice(q + 1)), param, o);
    return true;
  };
}

async function serve(req: IncomingMessage, res: ServerResponse, route: Route, query: URLSearchParams, rawParam: string | undefined, o: HotPathOptions): Promise<void> {
  const requestId = requestIdOf(req.headers['x-request-id']);
  res.setHeader('X-Request-Id', requestId);
  res.setHeader('X-Served-By', o.instanceId);
  o.accessLog?.(req, res, () => {});
  try {
    // The token is checked before the body is read: an anonymous client
    // cannot make the service buffer anything.
    const player = route.auth === 'token' ? verifyBearer(req.headers.authorization, o.token) : undefined;
    const body = route.method === 'POST' ? await readJsonBody(req, o.body) : {};
    let param: string | undefined;
    if (rawParam !== undefined) {
      try {
        param = decodeURIComponent(rawParam);
      } catch {
        throw new AppError('invalid_payload', 'malformed URL encoding');
      }
    }
    const answer = await route.handler({ query, param, headers: req.headers, requestId, player, body });
    if (!res.headersSent) sendJson(res, 200, answer, answer instanceof JsonText ? answer.text : JSON.stringify(answer));
  } catch (err) {
    writeError(o.log, err, req, res);
  }
}
