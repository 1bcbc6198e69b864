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
import { AppError } from '@lb/common/contracts';
import { readJsonBody, requestIdOf, sendJson, writeError, type BodyLimits, type Logger, type TokenIdentity } from '@lb/common/platform';
import type { LiveKey } from '../db/api-keys-repo.js';
import { setCaller, type Caller, type Credentials } from './credentials.js';
import { meterRequest, type MeteredKind, type Metering } from './metering.js';

/** What a hot handler sees of a request. */
export interface HotRequest {
  /** HEAD for a HEAD of a GET route (answered with the GET's headers and no body). */
  readonly method: 'GET' | 'HEAD' | 'POST';
  readonly query: URLSearchParams;
  /** The decoded path parameters, by name (`/rank/:userId` → `userId`). */
  readonly params: Readonly<Record<string, string>>;
  readonly headers: IncomingMessage['headers'];
  readonly requestId: string;
  /** Who the request is (its project, key, player): see http/credentials.ts. */
  readonly caller: Caller;
  /** The verified player (a Bearer token; on live routes also a `?ticket=`), if one was sent. */
  readonly player: TokenIdentity | undefined;
  /** A key that writes for any player of its project (server or platform), on routes with `auth: 'token-or-key'`. */
  readonly admin: LiveKey | undefined;
  /** The parsed JSON body (POST routes; `{}` when there is none). */
  readonly body: unknown;
}

export type HotHandler = (r: HotRequest) => Promise<unknown>;

/** An answer a handler already has as JSON text (sent as is). */
export class JsonText {
  constructor(readonly text: string) {}
}

/**
 * An answer that takes the response over (an event stream): the handler's
 * checks have passed, `start` writes the headers and whatever follows.
 */
export class Takeover {
  constructor(readonly start: (req: IncomingMessage, res: ServerResponse) => void) {}
}

/** One route of the table. */
export interface Route {
  /** GET routes also answer HEAD (the same headers, no body). */
  readonly method: 'GET' | 'POST';
  /** An exact path (`/top`) or one with parameters (`/boards/:board/rank/:userId`). */
  readonly path: string;
  /**
   * `token`: a valid Bearer token is required; `token-or-key`: a token, or
   * a server (or platform) X-Api-Key, which writes for any player of its
   * project. Checked before the body is read.
   */
  readonly auth: 'none' | 'token' | 'token-or-key';
  /** A live stream: the key may come as `?key=` (client keys only) and the player as `?ticket=`. */
  readonly live?: true;
  /**
   * What the route is to metering (http/metering.ts): by default a GET
   * route is a `read` (a live one a `stream`: the subscription) and a POST
   * route a `write` (whose bucket, count and quota are the write script's).
   * Reads and streams count against the project's reads per second too.
   */
  readonly meter?: MeteredKind;
  readonly handler: HotHandler;
}

export interface HotPathOptions {
  instanceId: string;
  /** Resolves every request's key and token into its caller. */
  credentials: Credentials;
  /** Each project's reads per second, and every request's usage and quota. */
  metering: Metering;
  body: BodyLimits;
  log: Logger;
  /** morgan (or any connect-style logger) run on every request served here. */
  accessLog?: ((req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void) | undefined;
}

/** The table compiled for lookups: exact paths in a map, paths with parameters by their segments. */
interface Compiled {
  exact: Map<string, Route>;
  patterns: { segments: string[]; route: Route }[];
}

function compile(routes: readonly Route[]): Record<Route['method'], Compiled> {
  const out = { GET: { exact: new Map(), patterns: [] }, POST: { exact: new Map(), patterns: [] } } as Record<Route['method'], Compiled>;
  for (const r of routes) {
    const t = out[r.method];
    if (!r.path.includes(':')) {
      if (t.exact.has(r.path)) throw new Error(`route ${r.method} ${r.path} is declared twice`);
      t.exact.set(r.path, r);
    } else {
      t.patterns.push({ segments: r.path.split('/'), route: r });
    }
  }
  return out;
}

/** The route and raw (still encoded) parameters of a path, if a pattern matches. */
function matchPattern(patterns: Compiled['patterns'], path: string): { route: Route; raw: Record<string, string> } | undefined {
  const parts = path.split('/');
  outer: for (const p of patterns) {
    if (p.segments.length !== parts.length) continue;
    const raw: Record<string, string> = {};
    for (let i = 0; i < parts.length; i++) {
      const seg = p.segments[i]!;
      if (seg.startsWith(':')) {
        if (parts[i] === '') continue outer;
        raw[seg.slice(1)] = parts[i]!;
      } else if (seg !== parts[i]) continue outer;
    }
    return { route: p.route, raw };
  }
  return undefined;
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
    const exact = t.exact.get(path);
    const m = exact ? { route: exact, raw: {} } : matchPattern(t.patterns, path);
    if (!m) return false;
    void serve(req, res, m.route, new URLSearchParams(q < 0 ? '' : url.slice(q + 1)), m.raw, o);
    return true;
  };
}

async function serve(req: IncomingMessage, res: ServerResponse, route: Route, query: URLSearchParams, raw: Record<string, string>, o: HotPathOptions): Promise<void> {
  const requestId = requestIdOf(req.headers['x-request-id']);
  res.setHeader('X-Request-Id', requestId);
  res.setHeader('X-Served-By', o.instanceId);
  o.accessLog?.(req, res, () => {});
  try {
    // Credentials are checked before the body is read: an anonymous client
    // cannot make the service buffer anything.
    const caller = await o.credentials.resolve({ headers: req.headers, query, live: route.live === true });
    setCaller(req, caller);
    const player = caller.player;
    const kind = caller.key?.kind;
    let admin: LiveKey | undefined;
    if (route.auth === 'token-or-key' && (kind === 'server' || kind === 'platform')) admin = caller.key;
    else if (route.auth === 'token-or-key' && kind === 'admin') throw new AppError('forbidden', 'an admin key cannot write scores: use a server key');
    else if (route.auth !== 'none' && !player) throw new AppError('missing_token', 'Authorization: Bearer token required');
    await meterRequest(o.metering, caller, meteredKind(route), res);
    const body = route.method === 'POST' ? await readJsonBody(req, o.body) : {};
    const params: Record<string, string> = {};
    for (const [k, v] of Object.entries(raw)) {
      try {
        params[k] = decodeURIComponent(v);
      } catch {
        throw new AppError('invalid_payload', 'malformed URL encoding');
      }
    }
    const answer = await route.handler({ method: req.method === 'HEAD' ? 'HEAD' : route.method, query, params, headers: req.headers, requestId, caller, player, admin, body });
    if (answer instanceof Takeover) answer.start(req, res);
    else if (!res.headersSent) sendJson(res, 200, answer, answer instanceof JsonText ? answer.text : JSON.stringify(answer));
  } catch (err) {
    writeError(o.log, err, req, res);
  }
}

/** What a route is to metering (see {@link Route.meter}). */
function meteredKind(route: Route): MeteredKind {
  if (route.meter) return route.meter;
  if (route.method === 'POST') return 'write';
  return route.live ? 'stream' : 'read';
}
