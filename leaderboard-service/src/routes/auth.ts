/** POST /auth/register and /auth/login: input checks and mapping only. */
import { Router } from 'express';
import { invalidField, validate, type ShardRouter } from '@lb/common/contracts';
import type { AccountService } from '../accounts/accounts.js';
import { callerOf, projectOf } from '../http/credentials.js';
import { initialScoreField, regionField } from './fields.js';

export function authRoutes(deps: { accounts: AccountService; router: ShardRouter; maxScoreDelta: number }): Router {
  const r = Router();

  r.post('/auth/register', async (req, res) => {
    const b = validate.bodyObject(req.body);
    const region = b.region === undefined ? undefined : regionField(deps.router, b.region);
    if (region === undefined) throw invalidField('region', 'is required');
    const initialScore = initialScoreField(b.initialScore, deps.maxScoreDelta);
    const answer = await deps.accounts.register({
      userId: validate.userId(b.user_id),
      name: validate.displayName(b.name),
      region,
      password: validate.password(b.password),
      initialScore,
      requestId: res.locals.requestId as string,
      project: projectOf(req),
      limits: callerOf(req).limits,
    });
    res.status(201).json(answer);
  });

  r.post('/auth/login', async (req, res) => {
    const b = validate.bodyObject(req.body);
    const userId = validate.userId(b.user_id);
    if (typeof b.password !== 'string' || b.password.length === 0 || b.password.length > 1024) {
      throw invalidField('password', 'must be a non-empty string');
    }
    // req.ip: the client behind the trusted proxies (nginx, the gateways), see TRUSTED_PROXIES.
    res.json(await deps.accounts.login(projectOf(req), userId, b.password, req.ip ?? req.socket.remoteAddress ?? ''));
  });

  return r;
}
