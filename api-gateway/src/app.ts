/**
 * Builds the api-gateway from its config and dependencies. Never listens:
 * index.ts (and the tests) do that.
 *
 * The hot path is short on purpose (reads should cost little more than the
 * proxying itself): access log, request id, one regexp, the read limiter,
 * then the forwarder, on plain node:http. No body parser: bodies are only
 * buffered, raw, for requests that have one. Express serves the rest.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import express, { type Express } from 'express';
import morgan from 'morgan';
import { createHttpServer, requestIdOf, traceIdOf, traceRequest, writeError } from '@lb/common/platform';
import type { GatewayConfig } from './config.js';
import type { Deps } from './deps.js';
import { errorHandler, notFound } from './http/errors.js';
import { healthRoute } from './routes/health.js';
import { proxyRoute } from './routes/proxy.js';

export const ACCESS_LOG_FORMAT =
  ':date[iso] :remote-addr ":method :url" :status :res[content-length] :response-time ms upstream=:res[x-upstream] rid=:res[x-request-id] trace=:trace';

/** The request's trace id in access lines (`-` while tracing is off). */
morgan.token('trace', (req) => traceIdOf(req));

/** X-Upstream of answers the gateway gives itself (health, 401, 429, 502...). */
export const LOCAL_UPSTREAM = 'gateway';

export function buildApp(config: GatewayConfig, deps: Deps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // nginx is the proxy whose X-Forwarded-For counts (it replaces the client's own); TRUSTED_PROXIES says where it is.
  app.set('trust proxy', config.trustedProxies);

  app.get('/health', healthRoute(deps.pool, config.gatewayId));
  app.use(notFound);
  app.use(errorHandler(deps.log));
  return app;
}

export interface Gateway {
  server: Server;
  app: Express;
  /** From now on every answer closes its connection (graceful stop). */
  drain(): void;
}

/**
 * The HTTP server: the proxied public API on plain node:http (see
 * routes/proxy.ts), the gateway's own routes (health, 404) on express. Both
 * get the access log, X-Request-Id and X-Upstream.
 */
export function buildServer(config: GatewayConfig, deps: Deps): Gateway {
  const app = buildApp(config, deps);
  const proxy = proxyRoute({
    forwarder: deps.forwarder,
    limiter: deps.limiter,
    token: config.token,
    body: { limitBytes: config.bodyLimitBytes, timeoutMs: config.bodyTimeoutMs },
    trustProxy: app.get('trust proxy fn') as (addr: string, i: number) => boolean,
  });
  const accessLog = config.accessLog ? morgan(ACCESS_LOG_FORMAT, { stream: deps.accessLogStream }) : undefined;
  let draining = false;
  const http = deps.metrics.enabled ? deps.metrics.http : undefined;
  const server = createHttpServer(
    (req, res) => {
      http?.track(req, res);
      // A SERVER span per request when tracing is on (the forwarder adds one CLIENT span per attempt).
      traceRequest(req, res, () => {
        accessLog?.(req, res, () => {});
        stamp(req, res);
        if (draining) closeAfterResponse(req, res);
        if (!proxy(req, res, (err) => writeError(deps.log, err, req, res))) app(req, res);
      });
    },
    { headersTimeoutMs: config.headersTimeoutMs, bodyTimeoutMs: config.bodyTimeoutMs },
  );
  return {
    server,
    app,
    drain() {
      draining = true;
      deps.forwarder.drain();
    },
  };
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
