/** The gateway's own answers: 404 for unknown paths and the one JSON error shape (written by @lb/common's writeError). */
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { AppError } from '@lb/common/contracts';
import { writeError, type Logger } from '@lb/common/platform';

/** 404 `not_found` for anything that is neither proxied nor the gateway's own. */
export const notFound: RequestHandler = (req) => {
  throw new AppError('not_found', `no route for ${req.method} ${req.path}`);
};

/** Writes every error as `{"error": code, "message": ...}` with its registered status. */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => writeError(log, err, req, res);
}
