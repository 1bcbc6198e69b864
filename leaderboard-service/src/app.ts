/**
 * Builds the leaderboard-service express app from its config and
 * dependencies. Never listens: index.ts (and the tests) do that.
 */
import express, { type Express } from 'express';
import morgan from 'morgan';
import type { ServiceConfig } from './config.js';
import type { Deps } from './deps.js';
import { errorHandler, jsonOnly, notFound, requestId, requireToken } from './http/middleware.js';
import { authRoutes } from './routes/auth.js';
import { healthRoutes } from './routes/health.js';
import { historyRoutes } from './routes/history.js';
import { readRoutes } from './routes/reads.js';
import { scoreRoutes } from './routes/scores.js';

export const ACCESS_LOG_FORMAT =
  ':date[iso] :remote-addr ":method :url" :status :res[content-length] :response-time ms rid=:res[x-request-id]';

export function buildApp(config: ServiceConfig, deps: Deps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('trust proxy', 'loopback, uniquelocal');

  if (config.accessLog) app.use(morgan(ACCESS_LOG_FORMAT));
  app.use(requestId);
  app.use((_req, res, next) => {
    res.setHeader('X-Served-By', config.instanceId);
    next();
  });

  const json = [jsonOnly, express.json({ limit: config.bodyLimitBytes, strict: true })];
  app.use(healthRoutes({ stores: deps.stores, pools: deps.pools, instanceId: config.instanceId }));
  app.use(readRoutes({ reader: deps.reader, router: deps.router }));
  app.use(historyRoutes({ history: deps.history, accounts: deps.accountsRepo }));
  app.use('/auth', ...json);
  app.use(authRoutes({ accounts: deps.accounts, router: deps.router, maxScoreDelta: config.maxScoreDelta }));
  app.use(
    '/score',
    requireToken(config.token),
    ...json,
    scoreRoutes({ writer: deps.writer, router: deps.router, maxScore: config.maxScore, maxScoreDelta: config.maxScoreDelta }),
  );
  app.use(notFound);
  app.use(errorHandler(deps.log));
  return app;
}
