/**
 * The express app's middlewares: request ids, content type, 404, errors.
 * (Reads and score writes do not go through express: see hot-path.ts.)
 */
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { AppError, toAppError, type Logger } from '@lb/common';
import { requestIdOf } from './hot-path.js';

/** Takes a well-formed X-Request-Id from upstream or makes one, and echoes it. */
export const requestId: RequestHandler = (req, res, next) => {
  const id = requestIdOf(req.headers);
  res.locals.requestId = id;
  res.setHeader('X-Request-Id', id);
  next();
};

/**
 * A request that carries a body must say it is JSON: a form post or plain
 * text is 415 rather than being silently read as an empty object.
 */
export const jsonOnly: RequestHandler = (req, _res, next) => {
  const len = req.headers['content-length'];
  const hasBody = req.headers['transfer-encoding'] !== undefined || (len !== undefined && len !== '0');
  if (hasBody && !req.is('application/json')) {
    throw new AppError('unsupported_media_type', 'send the body as application/json');
  }
  next();
};

/** 404 `not_found` for anything no route matched. */
export const notFound: RequestHandler = (req) => {
  throw new AppError('not_found', `no route for ${req.method} ${req.path}`);
};

/** Writes every error as `{"error": code, "message": ...}` with its status. */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const e = toAppError(err);
    if (e.status >= 500 && e.code === 'internal') {
      log.error('unhandled error', { err: err as Error, method: req.method, path: req.path, request_id: res.locals.requestId });
    }
    if (e.details && typeof e.details.retry_after === 'number') res.setHeader('Retry-After', String(e.details.retry_after));
    if (res.headersSent) return;
    res.status(e.status).json(e.toJSON());
  };
}
