/** The gateway's own answers: 404 for unknown paths and the one JSON error shape. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { AppError, toAppError, type Logger } from '@lb/common';

/** 404 `not_found` for anything that is neither proxied nor the gateway's own. */
export const notFound: RequestHandler = (req) => {
  throw new AppError('not_found', `no route for ${req.method} ${req.path}`);
};

/** Writes every error as `{"error": code, "message": ...}` with its registered status. */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => writeError(log, err, req, res);
}

/** The same answer on a plain node:http request (the proxy path does not use express). */
export function writeError(log: Logger, err: unknown, req: IncomingMessage, res: ServerResponse): void {
  const e = toAppError(err);
  if (e.status >= 500 && e.code === 'internal') {
    log.error('unhandled error', { err: err as Error, method: req.method, url: req.url, request_id: req.headers['x-request-id'] });
  }
  if (res.headersSent) {
    // The replica's answer had started: the client can only learn of the failure by the connection closing.
    res.destroy();
    return;
  }
  if (e.details && typeof e.details.retry_after === 'number') res.setHeader('Retry-After', String(e.details.retry_after));
  // A body we refused to read must not be drained on a kept-alive connection.
  if (e.code === 'payload_too_large') res.setHeader('Connection', 'close');
  const text = JSON.stringify(e.toJSON());
  res.writeHead(e.status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
