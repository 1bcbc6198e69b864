/**
 * Builds the api-gateway express app from its config and dependencies.
 * Never listens: index.ts (and the tests) do that.
 *
 * The hot path is short on purpose (reads should cost little more than the
 * proxying itself): access log, request id, one regexp, the read limiter,
 * then the forwarder. No body parser: bodies are only buffered, raw, for
 * requests that have one.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type Express } from 'express';
import morgan from 'morgan';
import type { GatewayConfig } from './config.js';
import type { Deps } from './deps.js';
import { errorHandler, notFound } from './http/errors.js';
import { requestIdOf } from './http/headers.js';
import { healthRoute } from './routes/health.js';
import { proxyRoute } from './routes/proxy.js';

export const ACCESS_LOG_FORMAT =
  ':date[iso] :remote-addr ":method :url" :status :res[content-length] :response-time ms upstream=:res[x-upstream] rid=:res[x-request-id]';

/** X-Upstream of answers the gateway gives itself (health, 401, 429, 502...). */
export const LOCAL_UPSTREAM = 'gateway';

export function buildApp(config: GatewayConfig, deps: Deps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // nginx (loopback or a private network) is the only proxy whose X-Forwarded-For counts.
  app.set('trust proxy', 'loopback, uniquelocal');

  if (config.accessLog) app.use(morgan(ACCESS_LOG_FORMAT, { stream: deps.accessLogStream }));
  app.locals.draining = false;
  app.use((req, res, next) => {
    stamp(req, res);
    if (app.locals.draining) closeAfterResponse(req, res);
    next();
  });
  app.get('/health', healthRoute(deps.pool, config.gatewayId));
  app.use(
    proxyRoute({
      forwarder: deps.forwarder,
      limiter: deps.limiter,
      token: config.token,
      bodyLimitBytes: config.bodyLimitBytes,
      trustProxy: app.get('trust proxy fn') as (addr: string, i: number) => boolean,
    }),
  );
  app.use(notFound);
  app.use(errorHandler(deps.log));
  return app;
}

/**
 * Gives every request an X-Request-Id (the caller's if well-formed) that is
 * echoed and forwarded, and an X-Upstream that the forwarder overwrites with
 * the replica that actually answered.
 */
function stamp(req: IncomingMessage, res: ServerResponse): void {
  const id = requestIdOf(req.headers['x-request-id']);
  req.headers['x-request-id'] = id;
  res.setHeader('X-Request-Id', id);
  res.setHeader('X-Upstream', LOCAL_UPSTREAM);
}

/**
 * While the server drains (index.ts sets `app.locals.draining` on SIGTERM),
 * each answer closes its connection. Without this a kept-alive client such
 * as nginx keeps sending on its open connections, which `server.close()`
 * keeps serving, and the shutdown never completes. httpxy derives the
 * client-side Connection header from the request's, hence both.
 */
function closeAfterResponse(req: IncomingMessage, res: ServerResponse): void {
  req.headers.connection = 'close';
  res.setHeader('Connection', 'close');
}
