/**
 * Builds the leaderboard-service: the hot routes (reads, score writes) on
 * plain node:http, everything else on an express app. Never listens:
 * index.ts (and the tests) do that.
 */
import type { Server } from 'node:http';
import express, { type Express } from 'express';
import { createHttpServer, traceIdOf, traceRequest } from '@lb/common/platform';
import morgan from 'morgan';
import type { ServiceConfig } from './config.js';
import type { Deps } from './deps.js';
import { hotPath } from './http/hot-path.js';
import { usageRoutes } from './routes/usage.js';
import { credentialsStep, errorHandler, jsonBody, notFound, requestId } from './http/middleware.js';
import { adminRoutes, requireAdminKey } from './routes/admin.js';
import { boardApiRoutes } from './routes/board-api.js';
import { authRoutes } from './routes/auth.js';
import { boardRoutes } from './routes/boards.js';
import { healthRoutes } from './routes/health.js';
import { historyRoutes } from './routes/history.js';
import { liveRoutes } from './routes/live.js';
import { originalRoutes } from './routes/original.js';

export const ACCESS_LOG_FORMAT =
  ':date[iso] :remote-addr ":method :url" :status :res[content-length] :response-time ms rid=:res[x-request-id] trace=:trace';

/** The request's trace id in access lines (`-` while tracing is off). */
morgan.token('trace', (req) => traceIdOf(req));

/** The express app: accounts, history, health, and the 404 and error answers. */
export function buildApp(config: ServiceConfig, deps: Deps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('trust proxy', config.trustedProxies);

  if (config.accessLog) app.use(morgan(ACCESS_LOG_FORMAT));
  app.use(requestId);
  app.use((_req, res, next) => {
    res.setHeader('X-Served-By', config.instanceId);
    next();
  });
  app.use(healthRoutes({ stores: deps.stores, pools: deps.pools, topCache: deps.topCache, live: deps.live, instanceId: config.instanceId }));
  // Everything below acts on the project the request's credentials decide.
  app.use(credentialsStep(deps.credentials, { reads: deps.projectReads, meter: deps.meter }));
  app.use(historyRoutes({ history: deps.history, accounts: deps.accountsRepo }));
  app.use('/auth', jsonBody(bodyLimits(config)));
  app.use(authRoutes({ accounts: deps.accounts, router: deps.router, maxScoreDelta: config.maxScoreDelta }));
  app.use(boardRoutes({ catalog: deps.catalog, admin: deps.boardAdmin }));
  // The key is checked before the body is read: an anonymous client cannot make the service buffer anything.
  app.use('/admin', requireAdminKey, jsonBody(bodyLimits(config)));
  app.use(adminRoutes({ admin: deps.boardAdmin, stores: deps.stores, instanceId: config.instanceId, tenants: deps.tenants, projects: deps.projects, keys: deps.apiKeysRepo, audit: deps.audit, credentials: deps.credentials }));
  app.use(usageRoutes({ report: deps.usage, meter: deps.meter, tenants: deps.tenants, clock: deps.clock }));
  app.use(notFound);
  app.use(errorHandler(deps.log));
  return app;
}

/** The HTTP server: hot routes first, the express app for the rest. */
export function buildServer(config: ServiceConfig, deps: Deps): Server {
  const app = buildApp(config, deps);
  // The route table of the hot path: every read and score write, and whether it needs a token.
  const hot = hotPath(
    [
      ...originalRoutes({
        catalog: deps.catalog,
        writer: deps.writer,
        views: deps.views,
        router: deps.router,
        maxScore: config.maxScore,
        maxScoreDelta: config.maxScoreDelta,
        metrics: deps.metrics,
      }),
      ...boardApiRoutes({ catalog: deps.catalog, writer: deps.writer, views: deps.views, router: deps.router, accounts: deps.accountsRepo, clock: deps.clock }),
      ...liveRoutes({ live: deps.live, catalog: deps.catalog, router: deps.router, token: config.token, clock: deps.clock }),
    ],
    {
      instanceId: config.instanceId,
      credentials: deps.credentials,
      metering: { reads: deps.projectReads, meter: deps.meter },
      body: bodyLimits(config),
      log: deps.log,
      accessLog: config.accessLog ? morgan(ACCESS_LOG_FORMAT) : undefined,
    },
  );
  const http = deps.metrics.enabled ? deps.metrics.http : undefined;
  const server = createHttpServer(
    (req, res) => {
      http?.track(req, res);
      // A SERVER span per request when tracing is on, child of the gateway's attempt (traceparent).
      traceRequest(req, res, () => {
        if (!hot(req, res)) app(req, res);
      });
    },
    { headersTimeoutMs: config.headersTimeoutMs, bodyTimeoutMs: config.bodyTimeoutMs },
  );
  // A replica publishes live channels while it serves their subscriptions: it joins the publishers once it listens.
  server.once('listening', () => deps.live.start());
  return server;
}

function bodyLimits(config: ServiceConfig) {
  return { limitBytes: config.bodyLimitBytes, timeoutMs: config.bodyTimeoutMs };
}
