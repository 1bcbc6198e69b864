/**
 * The express app's middlewares: request ids, the JSON body, 404, errors,
 * each the same piece the hot path uses (see @lb/common http).
 */
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { AppError } from '@lb/common/contracts';
import { readJsonBody, requestIdOf, writeError, type BodyLimits, type Logger } from '@lb/common/platform';
import { setCaller, type Credentials } from './credentials.js';
import { meterRequest, type MeteredKind, type Metering } from './metering.js';

/** Takes a well-formed X-Request-Id from upstream or makes one, and echoes it. */
export const requestId: RequestHandler = (req, res, next) => {
  const id = requestIdOf(req.headers['x-request-id']);
  res.locals.requestId = id;
  res.setHeader('X-Request-Id', id);
  next();
};

/**
 * Resolves the request's key and token into its caller (http/credentials.ts),
 * before any body is read, and meters it (http/metering.ts): /admin
 * requests are `admin`; a GET of the project's data (boards, history) is a
 * `read`; the accounts' routes are not metered here (registration's entry
 * is a write, counted by the write script).
 */
export function credentialsStep(credentials: Credentials, metering: Metering): RequestHandler {
  return (req, res, next) => {
    const q = req.originalUrl.indexOf('?');
    credentials
      .resolve({ headers: req.headers, query: new URLSearchParams(q < 0 ? '' : req.originalUrl.slice(q + 1)) })
      .then(async (caller) => {
        setCaller(req, caller);
        await meterRequest(metering, caller, expressKind(req.method, req.path), res);
      })
      .then(() => next(), next);
  };
}

/** What an express request is to metering. */
function expressKind(method: string, path: string): MeteredKind {
  if (ADMIN.test(path)) return 'admin';
  if (NOT_METERED.test(path)) return 'none';
  return method === 'GET' || method === 'HEAD' ? 'read' : 'none';
}

const ADMIN = /^\/admin(?:\/|$)/;
/** The express app's routes that are no operation on a project's data: the accounts' (health is answered before the credentials). */
const NOT_METERED = /^\/auth(?:\/|$)/;

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
