/**
 * The hot path: board reads and score writes, served on plain node:http.
 *
 * Profiling showed express' per-request machinery (router, prototype swaps,
 * body-parser) costing as much CPU as the leaderboard work itself on these
 * routes. They are few, fixed, and take tiny inputs, so a table lookup and a
 * bounded body read replace it; everything else (accounts, history, health,
 * 404) stays on the express app. The error shape, status codes, request ids
 * and access log are the same on both.
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
  /** The verified player (write routes only). */
  readonly player: Identity | undefined;
  /** The parsed JSON body (write routes only; `{}` when there is none). */
  readonly body: unknown;
}

export type HotHandler = (r: HotRequest) => Promise<unknown>;

/** An answer a handler already has as JSON text (sent as is). */
export class JsonText {
  constructor(readonly text: string) {}
}

export interface HotRoutes {
  /** GET routes without a parameter, by exact path. */
  get: Record<string, HotHandler>;
  /** GET routes with one trailing parameter, by prefix ending in '/'. */
  getParam: Record<string, HotHandler>;
  /** POST routes that need a token and a JSON body, by exact path. */
  post: Record<string, HotHandler>;
}

export interface HotPathOptions {
  instanceId: string;
  token: TokenSettings;
  body: BodyLimits;
  log: Logger;
  /** morgan (or any connect-style logger) run on every request served here. */
  accessLog?: ((req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void) | undefined;
}

/**
 * Returns a request listener that serves the hot routes and returns false
 * for any other request (the caller hands it to express).
 */
export function hotPath(routes: HotRoutes, o: HotPathOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    let handler: HotHandler | undefined;
    let param: string | undefined;
    let write = false;
    if (req.method === 'GET') {
      handler = routes.get[path];
      if (!handler) {
        const slash = path.lastIndexOf('/');
        const prefixed = routes.getParam[path.slice(0, slash + 1)];
        if (prefixed && slash < path.length - 1) {
          handler = prefixed;
          param = path.slice(slash + 1);
        }
      }
    } else if (req.method === 'POST') {
      handler = routes.post[path];
      write = true;
    }
    if (!handler) return false;
    void serve(req, res, handler, {
      query: new URLSearchParams(q < 0 ? '' : url.slice(q + 1)),
      param,
      write,
      o,
    });
    return true;
  };
}

async function serve(
  req: IncomingMessage,
  res: ServerResponse,
  handler: HotHandler,
  a: { query: URLSearchParams; param: string | undefined; write: boolean; o: HotPathOptions },
): Promise<void> {
  const requestId = requestIdOf(req.headers['x-request-id']);
  res.setHeader('X-Request-Id', requestId);
  res.setHeader('X-Served-By', a.o.instanceId);
  a.o.accessLog?.(req, res, () => {});
  try {
    let player: Identity | undefined;
    let body: unknown = {};
    if (a.write) {
      // The token is checked before the body is read: an anonymous client
      // cannot make the service buffer anything.
      player = verifyBearer(req.headers.authorization, a.o.token);
      body = await readJsonBody(req, a.o.body);
    }
    let param: string | undefined;
    if (a.param !== undefined) {
      try {
        param = decodeURIComponent(a.param);
      } catch {
        throw new AppError('invalid_payload', 'malformed URL encoding');
      }
    }
    const answer = await handler({ query: a.query, param, headers: req.headers, requestId, player, body });
    if (!res.headersSent) sendJson(res, 200, answer, answer instanceof JsonText ? answer.text : JSON.stringify(answer));
  } catch (err) {
    writeError(a.o.log, err, req, res);
  }
}
