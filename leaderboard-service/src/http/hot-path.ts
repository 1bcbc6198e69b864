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
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AppError, toAppError, verifyBearer, type Identity, type Logger, type TokenSettings } from '@lb/common';

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
  bodyLimitBytes: number;
  log: Logger;
  /** morgan (or any connect-style logger) run on every request served here. */
  accessLog?: ((req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void) | undefined;
}

const REQUEST_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

/** Takes a well-formed X-Request-Id from upstream, or makes one. */
export function requestIdOf(headers: IncomingMessage['headers']): string {
  const given = headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
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
  const requestId = requestIdOf(req.headers);
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
      body = await readJsonBody(req, a.o.bodyLimitBytes);
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
    send(res, 200, answer);
  } catch (err) {
    const e = toAppError(err);
    if (e.code === 'internal') a.o.log.error('unhandled error', { err: err as Error, method: req.method, url: req.url, request_id: requestId });
    if (e.details && typeof e.details.retry_after === 'number') res.setHeader('Retry-After', String(e.details.retry_after));
    // Unread request data would otherwise be parsed as the next request.
    if (!req.complete) res.setHeader('Connection', 'close');
    send(res, e.status, e.toJSON());
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const text = body instanceof JsonText ? body.text : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * Reads a JSON body of at most `limit` bytes. No body is `{}`; a body that is
 * not `application/json` is 415; broken JSON is 400 `invalid_json`; a
 * top-level value that is not an object or array is refused as express'
 * strict parser would.
 */
export function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const len = req.headers['content-length'];
  const chunked = req.headers['transfer-encoding'] !== undefined;
  if (!chunked && (len === undefined || len === '0')) return Promise.resolve({});
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i.test(type)) {
    return Promise.reject(new AppError('unsupported_media_type', 'send the body as application/json'));
  }
  if (len !== undefined && Number(len) > limit) {
    return Promise.reject(new AppError('payload_too_large', 'request body is too large'));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (c: Buffer) => {
      if (failed) return;
      size += c.length;
      if (size > limit) {
        failed = true;
        reject(new AppError('payload_too_large', 'request body is too large'));
        return;
      }
      chunks.push(c);
    });
    req.on('error', () => {
      if (!failed) reject(new AppError('invalid_payload', 'request body was cut off'));
      failed = true;
    });
    req.on('end', () => {
      if (failed) return;
      const text = Buffer.concat(chunks).toString('utf8').trim();
      if (text === '') return resolve({});
      const first = text[0];
      if (first !== '{' && first !== '[') return reject(new AppError('invalid_json', 'request body is not valid JSON'));
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new AppError('invalid_json', 'request body is not valid JSON'));
      }
    });
  });
}
