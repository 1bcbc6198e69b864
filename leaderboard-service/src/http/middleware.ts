/**
 * The express app's middlewares: request ids, the JSON body, 404, errors,
 * each the same piece the hot path uses (see @lb/common http).
 */
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { AppError } from '@lb/common/contracts';
import { readJsonBody, requestIdOf, writeError, type BodyLimits, type Logger } from '@lb/common/platform';
import { setCaller, type Credentials } from './credentials.js';
import type { ProjectReads } from './project-reads.js';

/** Takes a well-formed X-Request-Id from upstream or makes one, and echoes it. */
export const requestId: RequestHandler = (req, res, next) => {
  const id = requestIdOf(req.headers['x-request-id']);
  res.locals.requestId = id;
  res.setHeader('X-Request-Id', id);
  next();
};

/**
 * Resolves the request's key and token into its caller (http/credentials.ts),
 * before any body is read; a read of the project's data (a GET other than
 * the administration's and the accounts') counts against the project's
 * reads per second (http/project-reads.ts).
 */
export function credentialsStep(credentials: Credentials, reads: ProjectReads): RequestHandler {
  return (req, _res, next) => {
    const q = req.originalUrl.indexOf('?');
    credentials
      .resolve({ headers: req.headers, query: new URLSearchParams(q < 0 ? '' : req.originalUrl.slice(q + 1)) })
      .then(async (caller) => {
        setCaller(req, caller);
        if ((req.method === 'GET' || req.method === 'HEAD') && caller.project && !NOT_READS.test(req.path)) await reads.admit(caller.project, caller.limits);
      })
      .then(() => next(), next);
  };
}

/** The express app's GETs that are not reads of a project's data: administration, accounts. */
const NOT_READS = /^\/(?:admin|auth)(?:\/|$)/;

/** Parses a JSON body into `req.body` with the hot path's rules (media type, size, deadline). */
export function jsonBody(limits: BodyLimits): RequestHandler {
  return (req, _res, next) => {
    readJsonBody(req, limits).then((body) => {
      req.body = body;
      next();
    }, next);
  };
}

/** 404 `not_found` for anything no route matched. */
export const notFound: RequestHandler = (req) => {
  throw new AppError('not_found', `no route for ${req.method} ${req.path}`);
};

/** Writes every error as `{"error": code, "message": ...}` with its status. */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => writeError(log, err, req, res);
}
